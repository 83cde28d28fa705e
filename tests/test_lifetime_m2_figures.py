"""docs/lifetime_m2_figures.py (the M = 2 finite-N Fig. 3 script): record formats, the compute path on a tiny
model (N_sp = 2 at a fixed cutoff, about 2 s), the table and the figure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "lifetime_m2_figures.py"


@pytest.fixture(scope="module")
def fig3():
    spec = importlib.util.spec_from_file_location("lifetime_m2_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lead_record(g0, slow3_overlap, slow3_low, eigs, converged=True, N=4):
    """A record in the lead's session-7 format (abridged: the keys this script reads)."""
    return {"N": N, "seed": 2, "g0": g0, "fock": [10, 10], "gap": -eigs["odd"][0][0], "lifetime": -1 / eigs["odd"][0][0],
            "converged": converged, "eigs": eigs,
            "slow1": {"overlap": [[-0.9, 0.0], [0.9, 0.0]], "min_eigenvalue": [-0.1, -0.1]},
            "slow3": {"overlap": slow3_overlap, "min_eigenvalue": slow3_low}}


# the g0 = 1.5 and 1.2 records of /tmp/lead/s7/fig3m2_n4.jsonl, rounded
LEAD_15 = _lead_record(1.5, [[-0.97806, 0.0], [0.97806, 0.0], [0.0, 0.97718], [0.0, -0.97719]],
                       [-0.0074, -0.0074, -0.0409, -0.0409],
                       {"even": [[0.0, 0.0], [-0.0358, 0.0], [-0.78, 0.0]], "odd": [[-0.00588, 0.0], [-0.0311, 0.0], [-0.9, 0.1]]},
                       N=4)
LEAD_12 = _lead_record(1.2, [[-0.97048, 0.0], [0.97048, 0.0], [0.0, -1.07065], [0.0, 1.07228]],
                       [-0.0424, -0.0424, -0.177, -0.177],
                       {"even": [[0.0, 0.0], [-0.1464, 0.0], [-0.72, 0.0]], "odd": [[-0.0331, 0.0], [-0.1264, 0.0], [-0.9, 0.0]]})


def test_lead_records_are_converted_and_flagged(fig3):
    r15, r12 = fig3.normalise(LEAD_15), fig3.normalise(LEAD_12)
    assert r15["overlap"] == LEAD_15["slow3"]["overlap"] and r15["metastable_from"] == "slow3"
    assert r15["separation"] == pytest.approx(0.78 / 0.0358) and not r15["forced"]
    assert r12["separation"] == pytest.approx(0.72 / 0.1464) and r12["forced"]  # 4.9×: forced slow modes
    # states: (pattern, |ξ|, valid): the pattern-2 states at g0 = 1.2 are not density matrices
    assert [s[0] for s in fig3.states(r12)] == [1, 1, 2, 2]
    assert [s[2] for s in fig3.states(r12)] == [True, True, False, False]
    assert all(s[2] for s in fig3.states(r15)) and max(s[1] for s in fig3.states(r15)) == pytest.approx(0.97806)
    # a record without metastable states, and this script's own format, pass through
    bare = fig3.normalise({"N": 6, "seed": 2, "g0": 1.2, "fock": [6, 6], "lifetime": 80.0, "converged": False,
                           "overlap": [], "min_eigenvalue": []})
    assert list(fig3.states(bare)) == [] and bare["forced"] is False


def test_compute_table_and_figure(fig3, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    lead = tmp_path / "lead.jsonl"
    lead.write_text("\n".join(json.dumps(r) for r in (LEAD_12, LEAD_15)) + "\n")
    out = tmp_path / "fig.png"
    recs = fig3.main([str(data), str(lead), "--compute", "2:2.5", "--fock", "3", "--out", str(out)])
    assert out.stat().st_size > 10_000
    lines = (data / "lifetime_m2_N2.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    for key in ("N", "seed", "g0", "fock", "lifetime", "converged", "overlap", "min_eigenvalue"):
        assert key in rec
    assert rec["N"] == 2 and rec["seed"] == 2 and rec["fock"] == [3, 3] and rec["converged"] is False
    # g0 = 2.5: three slow modes (0.00307, 0.0102, 0.0131) separated 38x from −0.505 ± 2.00i, so four states;
    # their overlaps are those of the construction from the individual-spin reference in test_lifetime_m2_check
    # (±1.0016572, ±1.0085665 to 1e-8; overlaps just above 1 at this tiny cutoff, smallest eigenvalues ≈ −0.004
    # and −0.012). At g0 = 2 the separation is 7.7x and the record has no states (n_slow = 0).
    assert rec["n_slow"] == 3 and len(rec["overlap"]) == 4 and len(rec["min_eigenvalue"]) == 4
    got = sorted(abs(x) for row in rec["overlap"] for x in row if abs(x) > 0.5)
    np.testing.assert_allclose(got, [1.0016572, 1.0016572, 1.0085665, 1.0085665], atol=1e-6)
    assert [(r["N"], r["g0"]) for r in recs] == [(2, 2.5), (4, 1.2), (4, 1.5)]
    table = capsys.readouterr().out
    assert "| 4 | 2 | 1.2 | [10, 10] |" in table and "(forced)" in table and "invalid" in table
    # a second run finds the record and computes nothing
    assert fig3.compute(2, [2.5], 2, data, fig3.read([data]), fock=3) == []
    assert len((data / "lifetime_m2_N2.jsonl").read_text().splitlines()) == 1

