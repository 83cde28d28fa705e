"""Model and initial-state validation (issue 2): bad input raises a ValueError naming the parameter."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import opendicke as od
from opendicke.meanfield import evolve

MODES = [1.5, 2.0]
PATS = [[1, -1, 1, 1], [1, 1, -1, 1]]


def model(**changes):
    kwargs = dict(omega=0.5, omega_modes=MODES, kappa=1.0, g0=1.0)
    kwargs.update(changes)
    return od.DickeModel(**kwargs)


# ---------------------------------------------------------------------------------------------- valid input
def test_valid_model_fields_and_broadcast_kappa():
    m = model(kappa=0.7, patterns=PATS)
    assert m.n_modes == 2
    assert m.n_spins == 4
    assert not m.thermodynamic_limit
    np.testing.assert_array_equal(m.kappa, [0.7, 0.7])  # one value → all M modes
    np.testing.assert_array_equal(m.patterns, PATS)
    thermo = model(kappa=[0.5, 2.0])
    assert thermo.thermodynamic_limit and thermo.patterns is None and thermo.n_spins is None
    # Ω, Ω_μ and g0 may be any real numbers (the issue), κ = 0 is allowed (no loss)
    model(omega=-0.5, omega_modes=[-1.5, 0.0], g0=-2.0, kappa=0.0)


def test_random_patterns_are_pm1_seeded_and_reproducible():
    a = model(n_spins=50, seed=3)
    b = model(n_spins=50, seed=3)
    c = model(n_spins=50, seed=4)
    assert a.patterns.shape == (2, 50)
    assert set(np.unique(a.patterns)) == {-1, 1}
    np.testing.assert_array_equal(a.patterns, b.patterns)
    assert not np.array_equal(a.patterns, c.patterns)


def test_model_is_immutable():
    m = model(patterns=PATS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.g0 = 2.0
    with pytest.raises(ValueError):
        m.patterns[0, 0] = -1  # read-only array
    with pytest.raises(ValueError):
        m.omega_modes[0] = 3.0


def test_parse_patterns_hand_example():
    np.testing.assert_array_equal(od.parse_patterns("++-+,+-+-"), [[1, 1, -1, 1], [1, -1, 1, -1]])
    np.testing.assert_array_equal(od.parse_patterns(["+-", "-+"]), [[1, -1], [-1, 1]])


def test_paper_model_parameters():
    m = od.paper_model(0.9)
    assert m.omega == 0.5 and m.g0 == 0.9 and m.n_modes == 4
    np.testing.assert_allclose(m.omega_modes, [1.5, 2.0, 2.5, 3.0])  # Ω_μ = Ω(μ + 2)
    np.testing.assert_allclose(m.kappa, 1.0)


# ---------------------------------------------------------------------------------------------- sizes
def test_no_modes_is_rejected():
    with pytest.raises(ValueError, match=r"omega_modes.*(M ≥ 1|at least one)"):
        model(omega_modes=[])


@pytest.mark.parametrize("n_spins", [0, -3])
def test_n_spins_below_one_is_rejected(n_spins):
    with pytest.raises(ValueError, match=r"n_spins.*≥ 1"):
        model(n_spins=n_spins)


@pytest.mark.parametrize("n_spins", [2.5, "many", True])
def test_n_spins_not_an_integer_is_rejected(n_spins):
    with pytest.raises(ValueError, match="n_spins"):
        model(n_spins=n_spins)


def test_patterns_without_spins_are_rejected():
    # an M × 0 pattern matrix would be a model with N_sp = 0
    with pytest.raises(ValueError, match=r"patterns"):
        model(patterns=np.ones((2, 0)))


# ---------------------------------------------------------------------------------------------- rates
@pytest.mark.parametrize("kappa", [-1.0, [1.0, -0.1]])
def test_negative_kappa_is_rejected(kappa):
    with pytest.raises(ValueError, match=r"kappa.*≥ 0"):
        model(kappa=kappa)


@pytest.mark.parametrize("kappa", [[1.0, 1.0, 1.0], [[1.0, 1.0]]])
def test_kappa_of_wrong_length_is_rejected(kappa):
    with pytest.raises(ValueError, match=r"kappa"):
        model(kappa=kappa)


# ---------------------------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize(
    "name, value",
    [
        ("omega", np.nan),
        ("omega", np.inf),
        ("g0", -np.inf),
        ("g0", np.nan),
        ("omega_modes", [1.5, np.inf]),
        ("omega_modes", [np.nan, 2.0]),
        ("kappa", [1.0, np.nan]),
        ("kappa", np.inf),
    ],
)
def test_non_finite_parameters_are_rejected(name, value):
    with pytest.raises(ValueError, match=rf"{name}.*finite"):
        model(**{name: value})


@pytest.mark.parametrize("name, value", [("omega", "fast"), ("g0", [1.0, 2.0])])
def test_non_numbers_are_rejected(name, value):
    with pytest.raises(ValueError, match=name):
        model(**{name: value})


# ---------------------------------------------------------------------------------------------- patterns
@pytest.mark.parametrize(
    "bad",
    [
        [[1, -1, 0, 1], [1, 1, -1, 1]],  # 0
        [[1, -1, 2, 1], [1, 1, -1, 1]],  # 2
        [[1, -1, 1.0000001, 1], [1, 1, -1, 1]],  # almost 1
        [[1, -1, np.nan, 1], [1, 1, -1, 1]],  # NaN
        [[1, -1, np.inf, 1], [1, 1, -1, 1]],  # inf
    ],
)
def test_patterns_not_pm1_are_rejected(bad):
    with pytest.raises(ValueError, match=r"patterns.*\+1 and -1"):
        model(patterns=bad)


@pytest.mark.parametrize("bad", [[1, -1, 1, 1], np.ones((2, 2, 2))])
def test_patterns_of_wrong_shape_are_rejected(bad):
    with pytest.raises(ValueError, match=r"patterns.*shape"):
        model(patterns=bad)


def test_patterns_with_rows_other_than_m_are_rejected():
    with pytest.raises(ValueError, match=r"patterns has 1 rows.*M = 2"):
        model(patterns=[PATS[0]])
    with pytest.raises(ValueError, match=r"patterns has 3 rows.*M = 2"):
        model(patterns=PATS + [[1, 1, 1, 1]])


def test_patterns_disagreeing_with_n_spins_are_rejected():
    with pytest.raises(ValueError, match=r"patterns.*n_spins"):
        model(patterns=PATS, n_spins=5)


@pytest.mark.parametrize("text, match", [("++-,+0+", r"patterns.*row 2"), ("++-,++", r"patterns.*same length")])
def test_parse_patterns_rejects_bad_strings(text, match):
    with pytest.raises(ValueError, match=match):
        od.parse_patterns(text)


# ---------------------------------------------------------------------------------------------- initial states
THERMO = od.paper_model(1.0)
FINITE = od.paper_model(1.0, n_spins=16, seed=5)


@pytest.mark.parametrize("m", [THERMO, FINITE], ids=["thermodynamic", "finite"])
@pytest.mark.parametrize(
    "initial",
    [0, 5, -1, od.PatternState(0), od.PatternState(5), od.PatternState(-2, sign=-1),
     od.CorruptedPattern(5, flip=0.1), od.CorruptedPattern(0, flip=0.1)],
    ids=repr,
)
def test_pattern_outside_1_to_m_is_rejected(m, initial):
    with pytest.raises(ValueError, match=r"pattern.*1\.\.4"):
        evolve(m, initial, t_final=1.0, times=2)


def test_pattern_outside_1_to_m_in_a_list_of_initial_states_is_rejected():
    with pytest.raises(ValueError, match=r"pattern.*1\.\.4"):
        evolve(THERMO, [1, 2, 7], t_final=1.0, times=2)


@pytest.mark.parametrize("flip", [-0.1, 1.5, np.nan, np.inf])
def test_flip_fraction_outside_unit_interval_is_rejected(flip):
    with pytest.raises(ValueError, match=r"flip.*\[0, 1\]"):
        od.CorruptedPattern(1, flip=flip)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_flip_fraction_at_the_ends_is_allowed(flip):
    spins = od.CorruptedPattern(2, flip=flip, seed=0).spin_vectors(FINITE)
    np.testing.assert_array_equal(spins[:, 2], (1 - 2 * flip) * FINITE.patterns[1])


def test_flip_count_above_n_spins_is_rejected():
    with pytest.raises(ValueError, match=r"n_flip.*n_spins"):
        evolve(FINITE, od.CorruptedPattern(1, n_flip=17), t_final=1.0, times=2)
    with pytest.raises(ValueError, match=r"n_flip"):
        od.CorruptedPattern(1, n_flip=-1)


def test_sign_must_be_pm1():
    with pytest.raises(ValueError, match="sign"):
        od.PatternState(1, sign=0)


def test_non_finite_initial_alpha_and_bloch_vectors_are_rejected():
    with pytest.raises(ValueError, match="alpha.*finite"):
        evolve(THERMO, od.PatternState(1, alpha=[np.nan, 0, 0, 0]), t_final=1.0, times=2)
    with pytest.raises(ValueError, match="alpha"):
        evolve(THERMO, od.PatternState(1, alpha=[0, 0]), t_final=1.0, times=2)  # length ≠ M
    with pytest.raises(ValueError, match="vectors.*finite"):
        od.BlochState(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="vectors"):
        od.BlochState(np.array([[0.0, 0.8, 0.8]]))  # longer than 1
    with pytest.raises(ValueError, match="vectors.*rows.*n_spins"):
        evolve(FINITE, od.BlochState(np.tile([0.0, 0.0, 1.0], (15, 1))), t_final=1.0, times=2)


def test_non_finite_sweep_values_and_times_are_rejected():
    with pytest.raises(ValueError, match="g0.*finite"):
        evolve(THERMO, 1, t_final=1.0, times=2, vary={"g0": [1.0, np.nan]})
    with pytest.raises(ValueError, match="kappa"):
        evolve(THERMO, 1, t_final=1.0, times=2, vary={"kappa": [-1.0]})
    with pytest.raises(ValueError, match="t_final"):
        evolve(THERMO, 1, t_final=np.inf, times=2)
