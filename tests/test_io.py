"""Model files and result files: round trips and atomic writes."""

import os

import numpy as np
import pytest
import xarray as xr

import opendicke as od
from opendicke.io import atomic_path, load_dataset, load_model, save_dataset, save_model


def test_result_round_trips_through_netcdf(tmp_path):
    ds = od.evolve(od.paper_model(), [1, 2], t_final=3, times=4, vary={"g0": [0.8, 1.2]})
    assert np.iscomplexobj(ds["alpha"]) and ds["success"].dtype == bool
    path = save_dataset(ds, tmp_path / "r.nc")
    xr.testing.assert_identical(load_dataset(path), ds)


def test_model_round_trips_through_toml(tmp_path):
    m = od.DickeModel(omega=0.3, omega_modes=[1.0, 2.5, 3.0], kappa=[1.0, 0.5, 2.0], g0=-0.7, n_spins=10, seed=4)
    back = load_model(save_model(m, tmp_path / "m.toml"))
    assert back == m and np.array_equal(back.patterns, m.patterns)
    tl = od.paper_model(g0=1.3)
    assert load_model(save_model(tl, tmp_path / "tl.toml")) == tl


def test_bad_model_file_names_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("omega = 0.5\nomega_modes = [1.0]\nkapa = 1\n")
    with pytest.raises(ValueError, match="kapa"):
        load_model(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "missing.toml")


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.nc"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.nc"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_model(od.paper_model(), tmp_path / "m.toml")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_strings_longer_than_those_in_a_loaded_file_are_not_truncated(tmp_path):
    short = xr.Dataset({"message": (("x",), np.array(["ok", "no"]))})
    loaded = load_dataset(save_dataset(short, tmp_path / "a.nc"))
    longer = loaded.copy()
    longer["message"] = (("x",), np.array(["a much longer message than before", "no"]))
    longer["message"].encoding = loaded["message"].encoding
    back = load_dataset(save_dataset(longer, tmp_path / "b.nc"))
    assert back["message"].values[0] == "a much longer message than before"
