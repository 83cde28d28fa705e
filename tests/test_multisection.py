"""The shared multisection routine on verdicts known in closed form (step functions of g0)."""

import numpy as np
import pytest

from opendicke.meanfield.steady.multisection import multisect


def _run(verdict, lower, upper, edge, tol=1e-6, probes=5, max_rounds=60):
    lower, upper = np.array(lower, float), np.array(upper, float)
    n = lower.size
    rounds, messages, calls = np.zeros(n, dtype=np.int64), [""] * n, []

    def verdicts(which, g0s):
        calls.append(len(g0s))
        return np.array([verdict(int(i), g) for i, g in zip(which, g0s)])

    multisect(verdicts, lower, upper, np.arange(n), edge=edge, tol=tol, probes=probes, max_rounds=max_rounds,
              rounds=rounds, messages=messages)
    return lower, upper, rounds, messages, calls


def test_lowest_edge_brackets_each_step_and_batches_all_brackets():
    steps = [0.3711, 1.2345]
    lo, up, rounds, messages, calls = _run(lambda i, g: int(g > steps[i]), [0.0, 1.0], [1.0, 2.0], "lowest")
    assert np.all(up - lo <= 1e-6) and np.all((lo < steps) & (steps <= up))
    assert messages == ["", ""]
    assert calls[0] == 2 * 5  # both brackets in one call per round
    assert np.all(rounds <= int(np.ceil(np.log(1e6) / np.log(6))) + 1)  # width shrinks 6× per round


def test_lowest_edge_reports_the_lowest_of_two_transitions_and_says_so():
    # 1 on (0.2, 0.5) and above 0.8: the lowest transition is 0.2
    lo, up, _, messages, _ = _run(lambda i, g: int(0.2 < g < 0.5 or g > 0.8), [0.0], [1.0], "lowest")
    assert lo[0] < 0.2 <= up[0]
    assert "not monotonic" in messages[0]


def test_lowest_edge_stops_when_no_probe_decides():
    lo, up, rounds, messages, _ = _run(lambda i, g: -1, [0.0], [1.0], "lowest", max_rounds=30)
    assert (lo[0], up[0]) == (0.0, 1.0) and rounds[0] == 30 and "no probe" in messages[0]


def test_highest_edge_finds_where_the_verdict_stays_one():
    # 1 on (0.3, 0.5) and above 0.8: the highest transition is 0.8; undecided probes count as "not"
    lo, up, _, messages, _ = _run(lambda i, g: 1 if (0.3 < g < 0.5 or g > 0.8) else (-1 if g < 0.2 else 0),
                                  [0.0], [1.0], "highest")
    assert lo[0] <= 0.8 < up[0] and up[0] - lo[0] <= 1e-6
    assert "no verdict" in messages[0]


def test_unknown_edge_is_refused():
    with pytest.raises(ValueError, match="edge"):
        _run(lambda i, g: 1, [0.0], [1.0], "middle")
