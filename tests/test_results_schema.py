"""Every result kind conforms to the one schema (opendicke.results.RESULT_KINDS) and round-trips through NetCDF.

To cover a new kind: register it with ``opendicke.results.register_kind`` and add a cheap producer to
``PRODUCERS`` below.
"""

import numpy as np
import pytest

import opendicke as od
import opendicke.memory as mem
from opendicke.io import load_dataset, save_dataset
from opendicke.meanfield import SteadyStateOptions, evolve, find_critical_coupling, steady_state
from opendicke.model import paper_model
from opendicke.results import RESULT_KINDS, check_result
from opendicke.sweep import run_sweep
from opendicke.fluctuations import cumulant, twa
import opendicke.quantum  # noqa: F401  (registers quantum_evolution)
from opendicke.fluctuations.figure3 import finite_n_figure3
from opendicke.fluctuations.escape import EscapeOptions, escape_action

TL = paper_model(1.0, n_modes=2)


def _census():
    return mem.attractor_census(TL, [1.0], n_random=2, n_mixtures=1, t_max=300)


import warnings  # noqa: E402

from opendicke.quantum import lifetime as quantum_lifetime, steady_state as quantum_steady_state  # noqa: E402
from opendicke.model import DickeModel  # noqa: E402

_FINITE = DickeModel(omega=0.5, omega_modes=[1.5], kappa=1.0, g0=1.0, n_spins=3, seed=0)


def _quiet(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


PRODUCERS = {
    "meanfield_evolution": lambda: evolve(TL, [1, 2], t_final=2.0, times=3),
    "meanfield_steady_state": lambda: steady_state(TL, 1, vary={"g0": [0.5, 1.0]}),
    "critical_coupling": lambda: find_critical_coupling(TL, 1, tol=1e-2),
    "recognition_map": lambda: mem.recognition_map(TL, [0.6, 1.0], [0.0, 0.2], t_max=300),
    "selective_regime": lambda: mem.retrievable_patterns(TL, perturbation=0.0, t_max=300),
    "stability_threshold": lambda: mem.stability_threshold(TL, [1], tol=1e-2),
    "attractor_census": _census,
    "census_examples": lambda: mem.census_examples(TL, _census(), t_final=5.0, times=6),
    "quantum_steady_state": lambda: _quiet(lambda: quantum_steady_state(_FINITE, fock=6)),
    "lifetime": lambda: _quiet(lambda: quantum_lifetime(_FINITE, fock=6)),
    "crosstalk": lambda: mem.crosstalk([64], [2], g0=[1.0], seeds=[0], t_final=30, window=10),
    "retrieval_state": lambda: od.retrieval_state(TL, 2, sign=-1),
    "quantum_evolution": lambda: od.quantum.solve(paper_model(1.0, n_modes=1, n_spins=3, seed=0), 1, t_final=0.5,
                                                  times=3, fock=6, tol=1e-2, cost=False),
    "fluctuations": lambda: twa(paper_model(1.0, n_modes=2, n_spins=40, seed=0), [1, 2], t_final=0.2, times=3,
                                samples=4, seed=0, dt=0.05),
    "self_consistent_state": lambda: mem.self_consistent_state(paper_model(n_spins=30, seed=1), 2, g0=1.2),
    "paramagnet_thresholds": lambda: mem.paramagnet_thresholds(paper_model(n_spins=30, seed=1)),
    "fluctuations_figure3": lambda: finite_n_figure3(paper_model(1.0, n_modes=2), [40], [1.0], t_final=0.2),
    "escape_action": lambda: escape_action(DickeModel(omega=0.5, omega_modes=[1.5], g0=0.8),
                                           EscapeOptions(durations=(15.0,), start_duration=15.0, start_tolerance=1e-2,
                                                         mam_steps_per_time=10, segments_per_time=1.0, substeps=5)),
    "transient_retrieval_map": lambda: mem.transient_retrieval_map(TL, [0.8, 1.2], [0.0, 0.02], t_obs=2.0,
                                                                   t_final=4.0, times=5),
}


def test_every_registered_kind_has_a_producer():
    assert set(RESULT_KINDS) == set(PRODUCERS)


@pytest.mark.parametrize("kind", sorted(PRODUCERS))
def test_result_conforms_to_the_schema_and_round_trips(kind, tmp_path):
    ds = PRODUCERS[kind]()
    assert ds.attrs["kind"] == kind
    assert check_result(ds) == []
    assert ds.attrs["elapsed_seconds"] >= 0
    if "pattern" in ds.dims:
        np.testing.assert_array_equal(np.unique(ds["pattern"].values), ds["pattern"].values)
    back = load_dataset(save_dataset(ds, tmp_path / f"{kind}.nc"))
    assert check_result(back) == []


def test_sweep_results_keep_the_solver_kind_and_time_the_whole_sweep():
    ds = run_sweep(TL, [1, 2], vary={"g0": [0.5, 1.0]}, options=SteadyStateOptions(t_max=300.0), chunk_size=1, scheduler="in-process")
    assert ds.attrs["kind"] == "meanfield_steady_state" and check_result(ds) == []
    assert ds.attrs["sweep_chunks"] == 2 and ds.attrs["elapsed_seconds"] > 0


def test_schema_violations_are_reported():
    ds = evolve(TL, 1, t_final=1.0, times=2)
    broken = ds.drop_vars("overlap").assign_attrs(elapsed_s=1.0)
    del broken.attrs["elapsed_seconds"]
    problems = check_result(broken)
    assert any("overlap" in p for p in problems) and any("elapsed_seconds" in p for p in problems)
    assert any("elapsed_s" in p for p in problems)
    assert check_result(ds.assign_attrs(kind="nonsense"))[0].startswith("unknown result kind")
    assert any("'kind'" in p for p in check_result(ds.expand_dims(kind=["all"])))  # the attribute's name, as a dim
    shifted = ds.assign_coords(pattern=ds["pattern"] - 1)  # 0-based patterns are not allowed
    assert any("pattern" in p for p in check_result(shifted))
