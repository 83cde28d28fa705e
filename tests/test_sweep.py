"""Sweeps in chunks (issue 6): layout, spec hash, combination, resume, atomic chunk files, Dask executors.

The real-process tests start a `dask scheduler` and two `dask worker` processes on 127.0.0.1 (random ports),
kill a worker in the middle of a sweep, kill the sweep itself (SIGKILL) and resume it, and compare the
results point for point with the same sweep run in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from opendicke.io import load_dataset
from opendicke.meanfield import SteadyStateOptions, evolve
from opendicke.model import paper_model
from opendicke.states import PatternState
from opendicke.sweep import (
    AUTO_LOCAL_SOLVES,
    IN_PROCESS,
    LOCAL,
    _locked,
    combine_chunks,
    parts_directory,
    plan_sweep,
    resolve_scheduler,
    run_sweep,
)

STARTS = [PatternState(n) for n in (1, 2, 3, 4)]
EVOLVE_OPTIONS = {"t_final": 4.0, "times": 5, "keep_bloch": False}

# --------------------------------------------------------------------------------------------------
# A solver that counts its calls (in-process only)

CALLS: list[dict] = []


def counting_evolve(model, initial, *, vary, **options):
    CALLS.append({name: np.asarray(values).tolist() for name, values in vary.items()})
    return evolve(model, initial, vary=vary, **options)


def _stats(paths):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


# --------------------------------------------------------------------------------------------------
# Layout and spec


@pytest.mark.parametrize("shape, chunk_size", [((9,), 4), ((9, 2), 5), ((3, 4, 5), 7), ((7, 3), 100), ((5, 6), 1)])
def test_chunks_cover_the_grid_exactly_once_and_evenly(shape, chunk_size):
    vary = {name: np.linspace(0.5, 1.5, n) for name, n in zip(("g0", "omega", "kappa"), shape)}
    plan = plan_sweep(paper_model(), 1, vary=vary, solver=evolve, chunk_size=chunk_size)
    hits = np.zeros(shape, dtype=int)
    for chunk in plan.chunks:
        assert chunk.size() <= chunk_size
        hits[chunk.slices] += 1
    assert np.all(hits == 1)
    # along every dimension the pieces differ by at most one point
    for i, n in enumerate(shape):
        lengths = {c.slices[i].stop - c.slices[i].start for c in plan.chunks}
        assert max(lengths) - min(lengths) <= 1 and sum(sorted(lengths)) <= n + 1


def test_seed_axis_gives_one_chunk_per_seed_and_block():
    model = paper_model(n_spins=16, seed=3)
    plan = plan_sweep(model, STARTS, vary={"g0": np.linspace(0.5, 1.5, 6), "seed": [4, 5, 6]}, solver=evolve, chunk_size=3)
    assert [c.seed for c in plan.chunks] == [4, 4, 5, 5, 6, 6]
    assert plan.n_points == 18 and plan.n_solves == 72
    with pytest.raises(ValueError, match="seed"):
        plan_sweep(paper_model(), 1, vary={"seed": [0, 1]}, solver=evolve)  # thermodynamic limit: no patterns
    with pytest.raises(ValueError, match="whole numbers"):
        plan_sweep(model, 1, vary={"seed": [0.5]}, solver=evolve)
    with pytest.raises(ValueError, match="g1"):
        plan_sweep(model, 1, vary={"g1": [0.5]}, solver=evolve)


def test_spec_hash_changes_with_the_work_and_only_with_it():
    model = paper_model()
    base = dict(vary={"g0": [0.5, 1.0]}, solver=evolve, arguments={"t_final": 3.0, "times": 4})
    key = plan_sweep(model, STARTS, **base).key
    assert plan_sweep(paper_model(), STARTS, **base).key == key
    assert plan_sweep(model, STARTS, **{**base, "arguments": {"times": 4, "t_final": 3.0}}).key == key  # order
    assert plan_sweep(model, STARTS, **{**base, "vary": {"g0": [0.5, 1.0 + 1e-15]}}).key != key
    assert plan_sweep(model, STARTS[:2], **base).key != key
    assert plan_sweep(model.replace(omega=0.51), STARTS, **base).key != key
    assert plan_sweep(model, STARTS, **{**base, "arguments": {"t_final": 3.0, "times": 5}}).key != key
    assert plan_sweep(model, STARTS, **base, chunk_size=1).key != key
    assert plan_sweep(model, STARTS, **{**base, "solver": counting_evolve}).key != key


def test_scheduler_choice(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    small = plan_sweep(paper_model(), STARTS, vary={"g0": np.linspace(0.5, 2, 161)}, solver=evolve)
    big = plan_sweep(paper_model(), STARTS, vary={"g0": np.linspace(0.5, 2, 161), "omega": np.linspace(0.4, 0.6, 21)},
                     solver=evolve)
    assert small.n_solves < AUTO_LOCAL_SOLVES <= big.n_solves
    assert resolve_scheduler("auto", small) == IN_PROCESS
    assert resolve_scheduler(None, big) == (LOCAL if len(os.sched_getaffinity(0)) > 1 else IN_PROCESS)
    assert resolve_scheduler("auto", big, n_todo=1) == IN_PROCESS  # one chunk left: no cluster
    assert resolve_scheduler("auto", small, workers=2) == LOCAL
    assert resolve_scheduler("127.0.0.1:8786", small) == "tcp://127.0.0.1:8786"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9999")
    assert resolve_scheduler("auto", small) == "tcp://127.0.0.1:9999"
    assert resolve_scheduler("in-process", big) == IN_PROCESS
    with pytest.raises(ValueError, match="scheduler must be"):
        resolve_scheduler("cluster", small)


# --------------------------------------------------------------------------------------------------
# In-process: combination, seeds, provenance, resume


def test_chunked_steady_states_match_one_call_over_the_whole_grid(tmp_path):
    from opendicke.meanfield.steady import steady_state

    model = paper_model()
    vary = {"g0": np.linspace(0.55, 1.45, 5), "omega": [0.5, 0.55]}
    whole = steady_state(model, STARTS, vary=vary, options=SteadyStateOptions(t_max=500.0))
    ds = run_sweep(model, STARTS, vary=vary, options=SteadyStateOptions(t_max=500.0), chunk_size=4, scheduler="in-process",
                   out=tmp_path / "s.nc")
    assert ds.attrs["sweep_chunks"] == 3
    assert list(ds.dims) == list(whole.dims) and set(ds.variables) == set(whole.variables)
    for name in whole.variables:
        assert ds[name].dims == whole[name].dims and ds[name].dtype == whole[name].dtype, name
    for name in ("classification", "converged", "stable", "stationary", "message", "subspace_dim"):
        xr.testing.assert_equal(ds[name], whole[name])
    # round-off only: vectorised arithmetic rounds differently in batches of other sizes
    xr.testing.assert_allclose(ds, whole, rtol=1e-9, atol=1e-12)
    assert np.abs(np.abs(ds["overlap"]) - np.abs(whole["overlap"])).max() < 1e-12
    # written and read back identically; the chunk files are gone after success
    xr.testing.assert_identical(load_dataset(tmp_path / "s.nc"), ds)
    assert not parts_directory(tmp_path / "s.nc").exists()


def test_seed_axis_matches_one_call_per_seed():
    model = paper_model(n_spins=24, seed=0)
    seeds = [11, 12, 13]
    g0 = np.linspace(0.5, 1.5, 5)
    ds = run_sweep(model, STARTS[:2], vary={"g0": g0, "seed": seeds}, solver=evolve, arguments=EVOLVE_OPTIONS,
                   chunk_size=3, scheduler="in-process")
    assert ds["overlap"].dims[:3] == ("g0", "seed", "initial")
    assert ds.sizes["group"] == 8 and np.ptp(ds["group_size"].values.sum(axis=-1)) == 0  # one seed leaves a group empty
    assert ds.attrs["pattern_seeds"] == seeds and ds.attrs["varied"] == "g0,seed"
    for seed in seeds:
        one = evolve(model.replace(seed=seed), STARTS[:2], vary={"g0": g0}, **EVOLVE_OPTIONS)
        got = ds.sel(seed=seed, drop=True)
        assert np.all(got["group_size"].values[one.sizes["group"]:] == 0)  # padding: empty groups
        got = got.sel(group=one["group"])
        xr.testing.assert_allclose(got["overlap"].transpose(*one["overlap"].dims), one["overlap"], rtol=1e-9, atol=1e-12)
        xr.testing.assert_identical(got["couplings"], one["couplings"])
        assert json.loads(str(got["model_json"].values)) == model.replace(seed=seed).to_dict()
    assert "patterns" not in json.loads(ds.attrs["model_json"])  # the base model's patterns were not used


def test_provenance_is_recorded(tmp_path):
    model = paper_model(n_spins=20, seed=5)
    run_sweep(model, [PatternState(1), PatternState(2)], vary={"g0": [0.6, 1.2]},
                   options=SteadyStateOptions(t_max=300.0), chunk_size=1, scheduler="in-process", out=tmp_path / "p.nc")
    back = load_dataset(tmp_path / "p.nc")
    spec = json.loads(back.attrs["sweep_spec"])
    assert spec["model"] == model.to_dict() and json.loads(back.attrs["model_json"]) == model.to_dict()
    assert spec["grid"] == {"g0": [0.6, 1.2]} and spec["seeds"] is None and spec["dims"] == ["g0"]
    assert spec["solver"] == "opendicke.meanfield.steady.steady_state"
    assert spec["initial"][0] == {"type": "PatternState", "pattern": 1, "sign": 1, "alpha": None}
    assert spec["options"]["type"] == "SteadyStateOptions" and spec["options"]["t_max"] == 300.0 and spec["opendicke_version"] == back.attrs["opendicke_version"]
    assert back.attrs["seed"] == 5 and back.attrs["sweep_chunks"] == 2
    assert back["converged"].dims == ("g0", "initial") and back["converged"].dtype == bool
    assert back["classification"].shape == (2, 2)


def test_resume_recomputes_only_missing_chunks(tmp_path):
    out = tmp_path / "r.nc"
    kwargs = dict(vary={"g0": np.linspace(0.5, 1.5, 6)}, solver=counting_evolve, arguments=EVOLVE_OPTIONS, chunk_size=1,
                  scheduler="in-process", out=out)
    CALLS.clear()
    first = run_sweep(paper_model(), STARTS, keep_chunks=True, **kwargs)
    assert len(CALLS) == 6
    parts = parts_directory(out)
    files = sorted(parts.glob("chunk-*.nc"))
    assert len(files) == 6 and all(first.attrs["sweep_spec_hash"] in f.name for f in files)
    # lose the combined file and two chunks; leave a stale temporary file behind as a killed writer would
    out.unlink()
    files[1].unlink()
    files[4].unlink()
    (parts / f".{files[1].name}.abc123.tmp").write_bytes(b"half a file")
    before = _stats(f for i, f in enumerate(files) if i not in (1, 4))

    with pytest.raises(ValueError, match="resume"):
        run_sweep(paper_model(), STARTS, keep_chunks=True, **kwargs)  # finished chunks exist: never overwritten silently
    CALLS.clear()
    again = run_sweep(paper_model(), STARTS, keep_chunks=True, resume=True, **kwargs)
    assert sorted(c["g0"][0] for c in CALLS) == sorted([first["g0"].values[1], first["g0"].values[4]])
    assert again.attrs["sweep_chunks_reused"] == 4
    assert _stats(parts / name for name in before) == before  # the finished chunks were not touched
    assert not list(parts.glob(".*.tmp"))
    strip = dict(sweep_chunks_reused=0, elapsed_seconds=0, sweep_executor="")
    xr.testing.assert_identical(again.assign_attrs(strip), first.assign_attrs(strip))
    # complete: resuming again computes nothing and returns the file
    CALLS.clear()
    done = run_sweep(paper_model(), STARTS, resume=True, **kwargs)
    assert CALLS == [] and done.attrs["sweep_chunks_reused"] == 6


def labelled(model, initial, *, vary, **options):
    """A fake solver: strings whose length grows with g0 (chunks differ in string width)."""
    g0 = np.asarray(vary["g0"])
    return xr.Dataset({"message": (("g0",), np.array(["x" * int(10 * g) for g in g0])),
                       "converged": (("g0",), g0 < 1.0)}, coords={"g0": g0}, attrs={"kind": "test"})


def test_strings_of_any_width_survive_resume_and_writing(tmp_path):
    out = tmp_path / "w.nc"
    kwargs = dict(vary={"g0": np.linspace(0.5, 3.0, 6)}, solver=labelled, chunk_size=2, scheduler="in-process", out=out)
    first = run_sweep(paper_model(), 1, keep_chunks=True, **kwargs)
    out.unlink()
    for path in sorted(parts_directory(out).glob("chunk-*.nc"))[1:]:
        path.unlink()  # the chunk with the shortest strings is reused (read back from disk), the others computed
    again = run_sweep(paper_model(), 1, resume=True, **kwargs)
    expected = ["x" * int(10 * g) for g in np.linspace(0.5, 3.0, 6)]
    for ds in (first, again, load_dataset(out)):
        assert ds["message"].values.tolist() == expected
        assert ds["converged"].dtype == bool and ds.attrs["kind"] == "test"


def test_resume_refuses_chunks_of_another_sweep(tmp_path):
    out = tmp_path / "o.nc"
    model = paper_model(n_spins=12, seed=1)
    with pytest.raises(RuntimeError):
        run_sweep(model, STARTS, vary={"g0": [0.5, 1.0, 1.5]}, solver=_failing_on_second_chunk, arguments=EVOLVE_OPTIONS,
                  chunk_size=1, scheduler="in-process", out=out)
    assert len(list(parts_directory(out).glob("chunk-*.nc"))) == 1  # the finished chunk survived the failure
    with pytest.raises(ValueError, match="--seed"):
        run_sweep(model.replace(seed=2), STARTS, vary={"g0": [0.5, 1.0, 1.5]}, solver=_failing_on_second_chunk,
                  arguments=EVOLVE_OPTIONS, chunk_size=1, scheduler="in-process", out=out, resume=True)
    with pytest.raises(ValueError, match="needs out"):
        run_sweep(model, STARTS, vary={"g0": [0.5]}, solver=evolve, arguments=EVOLVE_OPTIONS, resume=True)


def _failing_on_second_chunk(model, initial, *, vary, **options):
    if np.asarray(vary["g0"])[0] == 1.0:
        raise RuntimeError("boom")
    return evolve(model, initial, vary=vary, **options)


def test_a_second_driver_on_the_same_output_is_refused(tmp_path):
    out = tmp_path / "l.nc"
    with _locked(parts_directory(out)), pytest.raises(ValueError, match="another sweep"):
        run_sweep(paper_model(), STARTS, vary={"g0": [0.5]}, solver=evolve, arguments=EVOLVE_OPTIONS, out=out)


def test_combine_reports_missing_chunks():
    plan = plan_sweep(paper_model(), STARTS, vary={"g0": [0.5, 1.0]}, solver=evolve, arguments=EVOLVE_OPTIONS, chunk_size=1)
    with pytest.raises(ValueError, match="missing"):
        combine_chunks(plan, {0: evolve(paper_model(), STARTS, vary={"g0": [0.5]}, **EVOLVE_OPTIONS)})


def test_cli_sweep_options_are_checked(tmp_path):
    from typer.testing import CliRunner

    from opendicke.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "--vary", "g0=0.5,1.0", "--resume"])
    assert result.exit_code == 2 and "--resume needs --out" in result.output
    result = runner.invoke(app, ["sweep", "--vary", "g0=0.5,1.0", "--scheduler", "cluster"])
    assert result.exit_code == 2 and "scheduler must be" in result.output
    result = runner.invoke(app, ["sweep", "--vary", "g0=0.5,1.0", "--vary", "seed=0,1"])
    assert result.exit_code == 2 and "n_spins" in result.output
    result = runner.invoke(app, ["sweep", "--vary", "g0=0.5,1.0", "--scheduler", "in-process", "--workers", "2"])
    assert result.exit_code == 2 and "local cluster only" in result.output
    result = runner.invoke(app, ["sweep", "--vary", "g0=0.6,1.2", "--pattern", "1", "--t-max", "300",
                                 "--scheduler", "in-process", "--out", str(tmp_path / "c.nc")])
    assert result.exit_code == 0, result.output
    assert "2 points" in result.output and "1 chunks (0 reused, 1 computed) on in-process" in result.output
    assert load_dataset(tmp_path / "c.nc")["classification"].dims == ("g0", "initial")


# --------------------------------------------------------------------------------------------------
# A local cluster: loopback only, same numbers as in-process


def _listening(pids):
    """Local addresses of the TCP sockets the processes ``pids`` listen on (Linux /proc)."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                found.append(cols[1].split(":")[0])
    return found


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            kids = [int(k) for k in task.read_text().split()]
            out += kids
            todo += kids
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
@pytest.mark.slow  # starts Dask processes (issue 10: default run ≤ 5 min); representative: the SIGKILL resume test
def test_local_cluster_listens_on_loopback_only_and_matches_in_process():
    from opendicke.sweep import _client

    with _client(LOCAL, 2) as (client, description):
        assert "127.0.0.1" in description
        addresses = [client.scheduler.address, *client.scheduler_info()["workers"]]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addresses)
        listening = _listening([os.getpid(), *_descendants(os.getpid())])
        assert len(listening) >= 3  # scheduler, its dashboard/http server, the workers
        assert set(listening) <= {"0100007F", "00000000000000000000000001000000"}, listening  # 127.0.0.1, ::1
    kwargs = dict(vary={"g0": np.linspace(0.5, 1.5, 4)}, solver=evolve, arguments=EVOLVE_OPTIONS, chunk_size=1)
    local = run_sweep(paper_model(), STARTS, scheduler="local", workers=2, **kwargs)
    inproc = run_sweep(paper_model(), STARTS, scheduler="in-process", **kwargs)
    assert local.attrs["sweep_executor"].startswith("local cluster (2 worker")
    xr.testing.assert_identical(local.assign_attrs(sweep_executor="", elapsed_seconds=0),
                                inproc.assign_attrs(sweep_executor="", elapsed_seconds=0))


# --------------------------------------------------------------------------------------------------
# Real processes: a dask scheduler and two workers on loopback; the sweep through the CLI

G0_SPEC = "g0=0.5:1.5:40"
CHUNK = 2  # 20 chunks of 2 × 4 solves
CLI = [sys.executable, "-c", "from opendicke.cli import main; main()"]


def _env():
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _sweep_cmd(out, *extra):
    return [*CLI, "sweep", "--vary", G0_SPEC, "--pattern", "all", "--chunk-size", str(CHUNK), "--out", str(out),
            "--keep-chunks", *extra]


@pytest.fixture(scope="module")
def reference():
    """The same sweep in this process, in-process (same chunk layout, hence the same numbers to the bit)."""
    from opendicke.grid import parse_range

    name, values = parse_range(G0_SPEC)
    return run_sweep(paper_model(), STARTS, vary={name: values}, arguments={"paper_units": False}, options=SteadyStateOptions(t_max=2000.0),
                     chunk_size=CHUNK, scheduler="in-process")


def _assert_same_sweep(path, reference):
    ds = load_dataset(path)
    assert ds.attrs["sweep_spec_hash"] == reference.attrs["sweep_spec_hash"]
    assert np.array_equal(ds["g0"].values, reference["g0"].values) and np.unique(ds["g0"].values).size == ds.sizes["g0"]
    strip = dict(sweep_executor="", elapsed_seconds=0, sweep_chunks_reused=0)
    xr.testing.assert_identical(ds.assign_attrs(strip), reference.assign_attrs(strip))
    return ds


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` + two `dask worker` processes (no nanny: a killed worker stays dead) on 127.0.0.1."""
    from distributed import Client

    bin_dir = Path(sys.executable).parent
    dask = str(bin_dir / "dask") if (bin_dir / "dask").exists() else "dask"
    procs = {}
    logs = []

    def start(name, args):
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs[name] = subprocess.Popen([dask, *args], stdout=log, stderr=subprocess.STDOUT, env=_env())

    scheduler_file = tmp_path / "scheduler.json"
    start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                        "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file),
                        "--idle-timeout", "600s"])
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            assert procs["scheduler"].poll() is None, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            start(f"w{i}", ["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--name", f"w{i}",
                            "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--death-timeout", "60",
                            "--memory-limit", "0"])
        with Client(address, set_as_default=False, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            yield address, procs, client
    finally:
        for name in sorted(procs, reverse=True):  # workers first, then the scheduler
            if procs[name].poll() is None:
                procs[name].terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def _worker_states(dask_worker):
    return dask_worker.state.executed_count, len(dask_worker.state.executing)


def _by_value(func):
    """Send a test-module function to the workers by value (they cannot import this test module)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[func.__module__])
    return func


@pytest.mark.slow  # starts Dask processes (issue 10: default run ≤ 5 min); representative: the SIGKILL resume test
def test_killing_a_worker_mid_sweep_loses_and_duplicates_nothing(dask_cluster, reference, tmp_path):
    address, procs, client = dask_cluster
    out = tmp_path / "cluster.nc"
    parts = parts_directory(out)
    n_chunks = reference.attrs["sweep_chunks"]
    sweep = subprocess.Popen(_sweep_cmd(out, "--scheduler", address), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=_env())
    first_seen = {}  # chunk file → (inode, mtime) when first seen: a rewrite would change it
    victim = None
    deadline = time.monotonic() + 180
    try:
        while sweep.poll() is None and time.monotonic() < deadline:
            for path in parts.glob("chunk-*.nc") if parts.exists() else []:
                first_seen.setdefault(path.name, (path.stat().st_ino, path.stat().st_mtime_ns))
            if victim is None:
                names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
                processing = client.processing()
                for addr, (executed, executing) in client.run(_by_value(_worker_states)).items():
                    if executed >= 1 and executing >= 1 and processing.get(addr):
                        victim = {"address": addr, "name": names[addr], "holding": list(processing[addr]),
                                  "files_before": len(first_seen)}
                        procs[names[addr]].send_signal(signal.SIGKILL)
                        procs[names[addr]].wait(timeout=10)
                        break
            time.sleep(0.02)
        stdout, stderr = sweep.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, stderr
    assert victim is not None, "the sweep finished before a worker could be killed mid-run"
    assert victim["files_before"] < n_chunks and victim["holding"]
    assert all(k.startswith("opendicke-sweep-") for k in victim["holding"])
    assert victim["address"] not in client.scheduler_info()["workers"]  # the scheduler saw it die
    assert f"{n_chunks} chunks (0 reused, {n_chunks} computed)" in stdout and address in stdout
    files = sorted(parts.glob("chunk-*.nc"))
    assert len(files) == n_chunks
    assert _stats(files) == {name: first_seen[name] for name in _stats(files)}  # each written exactly once
    _assert_same_sweep(out, reference)


def test_sweep_killed_with_sigkill_resumes_without_recomputing(reference, tmp_path):
    out = tmp_path / "killed.nc"
    parts = parts_directory(out)
    n_chunks = reference.attrs["sweep_chunks"]
    proc = subprocess.Popen(_sweep_cmd(out, "--scheduler", "in-process"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.exists() and len(list(parts.glob("chunk-*.nc"))) >= 3:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    files = sorted(parts.glob("chunk-*.nc"))
    assert 3 <= len(files) < n_chunks
    for path in files:  # every visible chunk file is complete
        ds = load_dataset(path)
        assert ds.attrs["sweep_spec_hash"] == reference.attrs["sweep_spec_hash"] and ds["classification"].size == CHUNK * 4
    before = _stats(files)

    done = subprocess.run(_sweep_cmd(out, "--scheduler", "in-process", "--resume"), capture_output=True, text=True,
                          env=_env(), timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"{n_chunks} chunks ({len(files)} reused, {n_chunks - len(files)} computed)" in done.stdout
    assert _stats(parts / name for name in before) == before  # finished chunks not recomputed nor rewritten
    assert len(list(parts.glob("chunk-*.nc"))) == n_chunks and not list(parts.glob(".*.tmp"))
    ds = _assert_same_sweep(out, reference)
    assert ds.attrs["sweep_chunks_reused"] == len(files)


# --------------------------------------------------------------------------------------------------
# Recognition maps as sweeps: chunks along the flipped fraction, each over the whole g0 grid

from opendicke.memory import recognition_map, recognition_map_task  # noqa: E402

MAP_G0 = np.linspace(0.6, 1.6, 5)
MAP_FLIPS = [0.0, 0.1, 0.2]
MAP_OPTIONS = {"g0": MAP_G0, "t_max": 300.0}
MAP_CALLS: list[list[float]] = []


def counting_map(model, initial, *, vary, **options):
    MAP_CALLS.append(np.asarray(vary["flip"]).tolist())
    return recognition_map_task(model, initial, vary=vary, **options)


counting_map.sweep_axes = recognition_map_task.sweep_axes
counting_map.sweep_solves_per_point = recognition_map_task.sweep_solves_per_point


def _assert_same_map(ds, ref, exact):
    assert dict(ds.sizes) == dict(ref.sizes) and set(ds.data_vars) == set(ref.data_vars)
    for name in ref.variables:
        a, b = ref[name], ds[name].transpose(*ref[name].dims)
        if exact or a.dtype.kind != "f":
            assert a.equals(b), name
        else:  # other batch sizes round differently (measured ≤ 3e-13)
            np.testing.assert_allclose(b.values, a.values, rtol=0, atol=1e-11, equal_nan=True, err_msg=name)


@pytest.mark.slow  # 18 s; the map through run_sweep stays in the default run via the CLI map test (chunks, resume)
def test_recognition_map_through_run_sweep_equals_the_direct_call():
    model = paper_model(n_spins=40, seed=3)
    kw = {"samples": 2}
    ref = recognition_map(model, MAP_G0, MAP_FLIPS, [1, 2], t_max=300.0, **kw)
    plan = plan_sweep(model, [1, 2], vary={"flip": MAP_FLIPS}, solver=recognition_map_task,
                      arguments={**MAP_OPTIONS, **kw})
    assert plan.solves_per_point == 5 * 2 * 2 and len(plan.chunks) == 1
    one = run_sweep(model, [1, 2], vary={"flip": MAP_FLIPS}, solver=recognition_map_task, arguments={**MAP_OPTIONS, **kw},
                    scheduler="in-process")
    _assert_same_map(one, ref, exact=True)  # one chunk: bit for bit
    chunked = run_sweep(model, [1, 2], vary={"flip": MAP_FLIPS}, solver=recognition_map_task,
                        arguments={**MAP_OPTIONS, **kw}, chunk_size=1, scheduler="local", workers=2)
    assert chunked.attrs["sweep_chunks"] == 3 and "local cluster" in chunked.attrs["sweep_executor"]
    _assert_same_map(chunked, ref, exact=False)
    with pytest.raises(ValueError, match="flip"):
        run_sweep(model, [1], vary={"g0": MAP_G0}, solver=recognition_map_task, arguments=MAP_OPTIONS,
                  scheduler="in-process")


@pytest.mark.slow  # 7 s; resuming is covered in the default run by the SIGKILL test
def test_recognition_map_resume_recomputes_nothing_finished(tmp_path):
    out = tmp_path / "map.nc"
    kwargs = dict(vary={"flip": MAP_FLIPS}, solver=counting_map, arguments=MAP_OPTIONS, chunk_size=1,
                  scheduler="in-process", out=out)
    MAP_CALLS.clear()
    first = run_sweep(paper_model(), [1, 2], keep_chunks=True, **kwargs)
    assert sorted(MAP_CALLS) == [[f] for f in MAP_FLIPS]
    ref = recognition_map(paper_model(), MAP_G0, MAP_FLIPS, [1, 2], t_max=300.0)
    _assert_same_map(first, ref, exact=False)
    parts = parts_directory(out)
    files = sorted(parts.glob("chunk-*.nc"))
    out.unlink()
    files[1].unlink()  # a killed run: the combined file and one chunk are missing
    before = _stats(f for i, f in enumerate(files) if i != 1)
    MAP_CALLS.clear()
    again = run_sweep(paper_model(), [1, 2], resume=True, keep_chunks=True, **kwargs)
    assert MAP_CALLS == [[MAP_FLIPS[1]]] and again.attrs["sweep_chunks_reused"] == 2
    assert _stats(parts / name for name in before) == before
    _assert_same_map(again, first, exact=True)
    _assert_same_map(load_dataset(out), first, exact=True)


def test_cli_memory_map_runs_in_chunks_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from opendicke.cli import app

    runner = CliRunner()
    out = tmp_path / "m.nc"
    args = ["memory", "map", "--vary", "g0=0.6:1.6:5", "--flips", "0,0.2", "--pattern", "1", "--t-max", "300",
            "--out", str(out), "--no-plot", "--chunk-size", "1", "--scheduler", "in-process"]
    result = runner.invoke(app, args + ["--workers", "2"])
    assert result.exit_code == 2 and "local cluster only" in result.output
    result = runner.invoke(app, args + ["--keep-chunks"])
    assert result.exit_code == 0, result.output
    assert "2 chunks (0 reused, 2 computed) on in-process" in result.output
    out.unlink()
    result = runner.invoke(app, args + ["--resume", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["chunks"] == 2 and summary["chunks_reused"] == 2
    assert load_dataset(out)["overlap"].dims == ("pattern", "flip", "g0")


# --------------------------------------------------------------------------------------------------
# Finite-N convergence studies as sweeps: one task per N_sp, the power-law fit over all of them


def test_convergence_study_through_run_sweep_equals_the_direct_call_and_resumes(tmp_path):
    from opendicke.quantum.convergence import convergence_study
    from opendicke.sweep import convergence_task

    model = paper_model().replace(omega_modes=[1.5], kappa=[1.0])
    options = {"t_final": 1.0, "times": 5, "seed": 0}
    ref = convergence_study(model, [2, 3, 4], 1, **options)
    out = tmp_path / "c.nc"
    kwargs = dict(vary={"n_spins": [2, 3, 4]}, solver=convergence_task, arguments=options, scheduler="in-process", out=out)
    first = run_sweep(model, 1, keep_chunks=True, **kwargs)
    assert first.attrs["sweep_chunks"] == 3  # one task per N_sp
    for ds in (first, load_dataset(out)):
        for name in ref.variables:
            if name != "elapsed_seconds":
                assert ref[name].equals(ds[name]), name
        assert ds.attrs["slope"] == ref.attrs["slope"] and ds.attrs["methods"] == ref.attrs["methods"]
    files = sorted(parts_directory(out).glob("chunk-*.nc"))
    out.unlink()
    files[0].unlink()
    before = _stats(files[1:])
    again = run_sweep(model, 1, resume=True, keep_chunks=True, **kwargs)
    assert again.attrs["sweep_chunks_reused"] == 2 and _stats(files[1:]) == before
    assert again["n_spins"].values.tolist() == [2, 3, 4] and again.attrs["slope"] == ref.attrs["slope"]
    strip = dict(sweep_chunks_reused=0, elapsed_seconds=0, sweep_executor="")
    xr.testing.assert_identical(again.drop_vars("elapsed_seconds").assign_attrs(strip),
                                first.drop_vars("elapsed_seconds").assign_attrs(strip))


def test_convergence_fit_from_restricts_the_power_law():
    from opendicke.quantum.convergence import convergence_study, fit_deviation, fit_power_law
    from opendicke.sweep import convergence_task

    n, d = np.array([4, 8, 1000, 2000, 4000]), np.array([0.75, 0.68, 0.015, 0.0075, 0.00375])
    assert fit_deviation(n, d, 1000)[0] == pytest.approx(-1.0, abs=1e-12)
    assert fit_deviation(n, d)[0] == pytest.approx(fit_power_law(n, d)[0]) and fit_deviation(n, d)[0] > -0.95
    model = paper_model().replace(omega_modes=[1.5], kappa=[1.0])
    options = {"t_final": 1.0, "times": 5, "seed": 0, "fit_from": 3}
    ref = convergence_study(model, [2, 3, 4], 1, **options)
    assert ref.attrs["slope"] == pytest.approx(fit_power_law([3, 4], ref["deviation"].values[1:])[0])
    swept = run_sweep(model, 1, vary={"n_spins": [2, 3, 4]}, solver=convergence_task, arguments=options,
                      scheduler="in-process")
    assert swept.attrs["slope"] == ref.attrs["slope"] and swept.attrs["fit_from"] == 3


def test_cli_convergence_runs_one_task_per_size_and_resumes(tmp_path):
    from typer.testing import CliRunner

    from opendicke.cli import app

    runner = CliRunner()
    args = ["convergence", "--omega-modes", "1.5", "--kappa", "1", "--n-spins", "2,3", "--t-final", "1", "--times", "5",
            "--out", str(tmp_path), "--scheduler", "in-process", "--json"]
    result = runner.invoke(app, args + ["--keep-chunks"])
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    ds = load_dataset(tmp_path / "convergence.nc")
    assert ds.attrs["sweep_chunks"] == 2 and len(list((tmp_path / "convergence.nc.parts").glob("chunk-*.nc"))) == 2
    (tmp_path / "convergence.nc").unlink()
    result = runner.invoke(app, args + ["--resume"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == first
    assert load_dataset(tmp_path / "convergence.nc").attrs["sweep_chunks_reused"] == 2
