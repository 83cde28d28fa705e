"""Parameter sweeps as chunked tasks: in-process, on a local Dask cluster, or on an existing one.

A sweep is the outer product of varied model parameters (``vary={"g0": ..., "omega": ...}``, one labelled
dimension each, as in :func:`~opendicke.grid.parameter_batch`), optionally times a ``seed`` axis (each seed
draws the model's random patterns anew: a different model per seed), solved from one or more initial
states by a batched solver (default :func:`~opendicke.meanfield.steady.steady_state`; any function
``solver(model, initial, vary=..., options=..., **arguments) -> xarray.Dataset`` with the varied names as leading
dimensions will do, e.g. :func:`~opendicke.meanfield.evolve`). The solver's numerical settings travel as its
own frozen options object (``options=SteadyStateOptions(...)``, ``EvolveOptions(...)``; handed to the solver as
``options=``, never as a dict), its other keywords (what to compute: ``t_final``, ``times``, ``paper_units``)
as ``arguments``; where and how the sweep runs is one :class:`ExecutionOptions`. A solver may declare its own axes, not model
parameters, in an attribute ``sweep_axes`` (names it accepts in ``vary``, e.g. the flipped fraction of
:func:`~opendicke.memory.recognition_map_task`), and the solves one grid point costs in
``sweep_solves_per_point(model, initial, arguments)`` (chunk sizes and the ``auto`` choice use it), and
``sweep_finish(ds) -> ds`` computes what needs the whole grid from the combined chunks (see
:func:`convergence_task`: one task per N_sp, the power-law fit over all of them).

**Chunks.** The grid is cut into blocks (:class:`Chunk`): one seed × a slice of every varied dimension
(inner dimensions whole, the outermost split one evenly, like C-order blocks). Each chunk is *one*
vectorised solver call over its slice, so a task is worth its overhead (the batched solvers are much
cheaper per point in large batches: a chunk holds about :data:`SOLVES_PER_CHUNK` solves by default). The
layout depends only on the work, never on the cluster, so a sweep can be resumed on another machine.

**Where it runs** (``scheduler``): ``"in-process"`` (a plain loop, no Dask imported: small work stays
fast), ``"local"`` (a :class:`distributed.LocalCluster` of single-threaded worker processes sized to the
machine, every server on 127.0.0.1, glibc's adaptive malloc trimming kept, see :func:`_client`), an address ``"tcp://HOST:PORT"`` of an existing cluster, or
``"auto"``: ``DASK_SCHEDULER_ADDRESS`` if set, else in-process for fewer than :data:`AUTO_LOCAL_SOLVES`
solves (or a single chunk, or a single core) and a local cluster above.

**Incremental, atomic, resumable** (with ``out``). Beside ``out`` a directory ``<out>.parts/`` receives one
NetCDF file per finished chunk, ``chunk-<index>-<spec hash>.nc``. The spec hash covers everything that
determines the numbers (solver, model, initial states, grid, seeds, arguments, options, chunk layout, package
version). The driver writes each chunk exactly once when its single task result arrives (tasks return
their Dataset; workers need no shared filesystem), through a temporary file and a rename, so a reader
never sees a half-written file, even after ``kill -9``; it then releases the task, so a worker lost later
cannot cause a recomputation. ``resume=True`` validates the chunk files on disk (spec hash, chunk index,
coordinates) and computes only the missing chunks. At the end the chunks are combined into one labelled
Dataset (identical in layout to a single call of the solver over the whole grid; the values agree to
round-off, see :func:`combine_chunks`), written atomically to ``out`` with its provenance, and the chunk
files are removed unless ``keep_chunks``. A lock file keeps two drivers off the same ``out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._version import __version__
from .grid import check_distinct, parameter_batch
from .model import DickeModel
from .options import merge_options
from .states import InitialState, as_initial_state

__all__ = [
    "run_sweep",
    "convergence_task",
    "plan_sweep",
    "SweepPlan",
    "Chunk",
    "combine_chunks",
    "parts_directory",
    "resolve_scheduler",
    "check_workers",
    "ExecutionOptions",
    "SOLVES_PER_CHUNK",
    "AUTO_LOCAL_SOLVES",
    "IN_PROCESS",
    "LOCAL",
    "AUTO",
]

IN_PROCESS, LOCAL, AUTO = "in-process", "local", "auto"
SEED = "seed"
#: Default chunk: about this many solves (parameter points × initial states) in one vectorised call.
SOLVES_PER_CHUNK = 1024
#: ``scheduler="auto"`` starts a local cluster only for at least this many solves (and ≥ 2 chunks, ≥ 2 cores).
AUTO_LOCAL_SOLVES = 4096
_CHUNK_GLOB = "chunk-*.nc"


def _default_solver():
    from .meanfield.steady import steady_state

    return steady_state


# ------------------------------------------------------------------------------------------------
# The plan: grid, seeds, chunk layout and the spec hash


@dataclass(frozen=True)
class Chunk:
    """One task: a seed (or ``None``) and a slice of every varied dimension (in the plan's grid order)."""

    index: int
    seed: int | None
    slices: tuple[slice, ...]
    block: tuple[int, ...]  # position of the block along each varied dimension

    def size(self) -> int:
        return int(np.prod([s.stop - s.start for s in self.slices], dtype=np.int64))


@dataclass(frozen=True, eq=False)
class SweepPlan:
    """Everything a sweep computes, and how it is cut into chunks. Build it with :func:`plan_sweep`."""

    solver: Callable
    model: DickeModel
    initial: object  # an InitialState or a list of them (as the solver takes it)
    grid: dict[str, np.ndarray]  # varied model parameters, in order
    seeds: np.ndarray | None  # pattern seeds, or None
    dims: tuple[str, ...]  # leading dimensions of the result (grid names and "seed", in the order given)
    arguments: dict  # the solver's keyword arguments (what to compute), sorted by name
    options: object  # the solver's frozen options object (handed over as ``options=``), or None
    solves_per_point: int  # solves of one grid point (the initial states, or what the solver declares)
    block_shape: tuple[int, ...]  # chunk extent along each grid dimension
    chunks: tuple[Chunk, ...]
    spec: dict  # canonical, JSON-ready description (hashed)
    key: str  # spec hash

    @property
    def grid_dims(self) -> tuple[str, ...]:
        return tuple(self.grid)

    @property
    def n_starts(self) -> int:
        return len(self.initial) if isinstance(self.initial, (list, tuple)) else 1

    @property
    def n_points(self) -> int:
        """Parameter points (seeds included), each solved from every initial state."""
        size = int(np.prod([v.size for v in self.grid.values()], dtype=np.int64))
        return size * (1 if self.seeds is None else self.seeds.size)

    @property
    def n_solves(self) -> int:
        return self.n_points * self.solves_per_point

    def chunk_model(self, chunk: Chunk) -> DickeModel:
        return self.model if chunk.seed is None else self.model.replace(seed=int(chunk.seed))

    def chunk_vary(self, chunk: Chunk) -> dict:
        return {name: self.grid[name][sl] for name, sl in zip(self.grid, chunk.slices)}

    def chunk_filename(self, chunk: Chunk) -> str:
        return f"chunk-{chunk.index:05d}-{self.key}.nc"


def _plain(obj):
    """JSON-ready, canonical form of specs: dataclasses, numpy, floats (repr round-trips), callables."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": type(obj).__name__, **{f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, DickeModel):
        return obj.to_dict()
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, complex):
        return {"real": _plain(obj.real), "imag": _plain(obj.imag)}
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if callable(obj):
        return f"{obj.__module__}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    raise TypeError(f"cannot describe {obj!r} in a sweep spec")


def _json(obj) -> str:
    return json.dumps(_plain(obj), separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _seeds(values) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 0):
        raise ValueError(f"vary seed: give non-negative whole numbers, got {np.asarray(values).tolist()}")
    seeds = arr.astype(np.int64)
    if np.unique(seeds).size != seeds.size:
        raise ValueError(f"vary seed: seeds must be distinct, got {seeds.tolist()}")
    return seeds


def _block_shape(shape: tuple[int, ...], chunk_size: int) -> tuple[int, ...]:
    """C-order blocks of at most ``chunk_size`` points: inner dimensions whole, one dimension split evenly."""
    block = [1] * len(shape)
    room = chunk_size
    for i in reversed(range(len(shape))):
        n = shape[i]
        if n <= room:
            block[i] = n
            room //= n
        else:
            pieces = math.ceil(n / max(room, 1))
            block[i] = math.ceil(n / pieces)
            room = 1
    return tuple(block)


def plan_sweep(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    vary: Mapping[str, Sequence[float]] | None = None,
    solver: Callable | None = None,
    arguments: Mapping | None = None,
    options: object | None = None,
    chunk_size: int | None = None,
) -> SweepPlan:
    """Lay out a sweep: grid, seeds, chunks and the spec hash (nothing is computed).

    Parameters
    ----------
    model:
        The model; its parameters are the defaults for the names not varied.
    initial:
        An initial state or pattern number, or a list of them (a list adds the dimension ``initial``).
    vary:
        ``{name: values}``: model parameters as in :func:`~opendicke.grid.parameter_batch` (``g0``,
        ``omega``, ``kappa``, ``kappa_<n>``, ``omega_mode_<n>``; the spin rates ``gamma_*`` for solvers
        that take them, e.g. the default steady states) and ``seed``: pattern seeds (whole numbers;
        needs a finite ``n_spins``, each seed draws new random patterns and replaces the model's). One
        labelled dimension per name, in the order given.
    solver:
        ``solver(model, initial, vary=..., options=..., **arguments) -> xarray.Dataset`` (default: steady states).
        It must be importable by name on the workers (a module-level function).
    arguments:
        The solver's keyword arguments that say what to compute (e.g. ``{"paper_units": True}`` for steady
        states, ``{"t_final": 100, "times": 11}`` for :func:`~opendicke.meanfield.evolve`).
        A model with spin rates is refused unless the solver declares ``solver.sweep_spin_rates = True``.
    options:
        The solver's numerical settings as its frozen options object (e.g.
        ``SteadyStateOptions(t_max=2000)``, ``EvolveOptions(rtol=1e-9)``), handed over as ``options=``; a dict
        is refused (``TypeError``): option objects are validated when built, before any work.
    chunk_size:
        Parameter points per chunk (each solved from every initial state). Default: about
        :data:`SOLVES_PER_CHUNK` solves per chunk. Chunks never mix seeds.
    """
    solver = solver or _default_solver()
    vary = dict(vary or {})
    many = isinstance(initial, (list, tuple))
    starts = [as_initial_state(s) for s in (initial if many else [initial])]
    if not starts:
        raise ValueError("initial: give at least one initial state")
    seeds = _seeds(vary[SEED]) if SEED in vary else None
    if seeds is not None and model.thermodynamic_limit:
        raise ValueError("vary seed: pattern seeds need a finite number of spins (random patterns); give n_spins")
    grid = {name: np.atleast_1d(np.asarray(values, dtype=float)) for name, values in vary.items() if name != SEED}
    own_axes = tuple(getattr(solver, "sweep_axes", ()))
    for name in own_axes:
        if name in grid and (grid[name].ndim != 1 or grid[name].size == 0 or not np.all(np.isfinite(grid[name]))):
            raise ValueError(f"vary {name}: give a non-empty list of finite numbers")
        if name in grid:
            check_distinct(name, grid[name])
    params = {name: values for name, values in grid.items() if name not in own_axes}
    # individual spin rates (model or grid) only for solvers that take them (``solver.sweep_spin_rates``)
    rates_ok = bool(getattr(solver, "sweep_spin_rates", False))
    if model.spin_dissipation and not rates_ok:
        raise ValueError(f"gamma_down/gamma_up/gamma_phi: the sweep solver {getattr(solver, '__name__', solver)!r} "
                         "does not take individual spin rates (it would ignore them)")
    parameter_batch(model, {name: values[:1] for name, values in params.items()}, spin_rates=rates_ok)  # checked
    for name, values in params.items():
        parameter_batch(model, {name: values}, spin_rates=rates_ok)
    if options is not None and (isinstance(options, Mapping) or not dataclasses.is_dataclass(options)):
        raise TypeError(f"options: give the solver's options object (e.g. SteadyStateOptions(t_max=2000) or "
                        f"EvolveOptions(rtol=1e-9)), not {type(options).__name__}; the solver's other keywords go "
                        f"in arguments=")
    if arguments is not None and not isinstance(arguments, Mapping):
        raise TypeError(f"arguments: give the solver's keyword arguments as a mapping, got {type(arguments).__name__}")
    if arguments and ({"options", "vary", "progress"} & set(arguments)):
        raise ValueError(f"arguments: {sorted({'options', 'vary', 'progress'} & set(arguments))} are set by the sweep "
                         f"(options: the options= parameter)")
    arguments = {k: arguments[k] for k in sorted(arguments)} if arguments else {}

    per_point = getattr(solver, "sweep_solves_per_point", None)
    n_starts = len(starts)
    solves_per_point = max(1, int(per_point(model, starts if many else starts[0], arguments))) if per_point else n_starts
    if chunk_size is None:
        chunk_size = max(1, SOLVES_PER_CHUNK // solves_per_point)
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive whole number of parameter points, got {chunk_size!r}")
    shape = tuple(v.size for v in grid.values())
    block = _block_shape(shape, int(chunk_size))
    ranges = [range(math.ceil(n / b)) for n, b in zip(shape, block)]
    chunks = []
    for seed in (seeds.tolist() if seeds is not None else [None]):
        for pos in np.ndindex(*[len(r) for r in ranges]) if ranges else [()]:
            slices = tuple(slice(p * b, min((p + 1) * b, n)) for p, b, n in zip(pos, block, shape))
            chunks.append(Chunk(len(chunks), seed, slices, tuple(pos)))

    base = model.to_dict()
    if seeds is not None:  # the base model's own patterns are not used: keep them out of the spec
        base.pop("patterns", None)
        base.pop("seed", None)
    spec = {
        "solver": _plain(solver),
        "model": base,
        "initial": _plain(starts if many else starts[0]),
        "grid": _plain(grid),
        "seeds": _plain(seeds),
        "dims": list(vary),
        "arguments": _plain(arguments),
        "options": _plain(options),
        "chunk_block": list(block),
        "opendicke_version": __version__,
    }
    key = hashlib.sha256(_json(spec).encode()).hexdigest()[:16]
    return SweepPlan(solver, model, starts if many else starts[0], grid, seeds, tuple(vary), arguments, options, solves_per_point,
                     block, tuple(chunks), spec, key)


# ------------------------------------------------------------------------------------------------
# One chunk (runs on a worker or in-process)


def solve_chunk(solver: Callable, model: DickeModel, initial, vary: dict, arguments: dict, options, seed: int | None,
                progress: Callable[[float], None] | None = None):
    """The task: one vectorised solver call over a chunk's slice of the grid (with the chunk's seed)."""
    if seed is not None:
        model = model.replace(seed=int(seed))
    extra = {} if options is None else {"options": options}
    if progress is not None:
        extra["progress"] = progress
    return solver(model, initial, vary=vary, **arguments, **extra)


def _accepts_progress(solver) -> bool:
    try:
        params = inspect.signature(solver).parameters
    except (TypeError, ValueError):
        return False
    return "progress" in params


# ------------------------------------------------------------------------------------------------
# Chunk files


def parts_directory(out: str | os.PathLike) -> Path:
    """Where the chunk files of a sweep written to ``out`` live: ``<out>.parts/``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def _storable(ds):
    """Dataset attributes NetCDF can hold: booleans as 0/1, None as "" (values otherwise unchanged)."""
    fix = {k: int(v) if isinstance(v, (bool, np.bool_)) else "" for k, v in ds.attrs.items()
           if v is None or isinstance(v, (bool, np.bool_))}
    return ds.assign_attrs(fix) if fix else ds


def _chunk_attrs(plan: SweepPlan, chunk: Chunk) -> dict:
    return {
        "sweep_spec_hash": plan.key,
        "sweep_chunk": chunk.index,
        "sweep_chunk_seed": -1 if chunk.seed is None else int(chunk.seed),
        "sweep_chunk_slices": json.dumps([[s.start, s.stop] for s in chunk.slices]),
    }


def _valid_chunk_file(path: Path, plan: SweepPlan, chunk: Chunk) -> bool:
    """A finished chunk file of this very sweep: right spec hash, index and coordinates."""
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            attrs = ds.attrs
            if attrs.get("sweep_spec_hash") != plan.key or int(attrs.get("sweep_chunk", -1)) != chunk.index:
                return False
            for name, values in plan.chunk_vary(chunk).items():
                if name not in ds.coords or not np.array_equal(ds[name].values, values):
                    return False
            return True
    except Exception:  # unreadable: recompute it
        return False


@contextlib.contextmanager
def _locked(directory: Path):
    """Exclusive advisory lock on ``directory/.lock`` for the whole run (released by the OS on kill -9)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fh = open(directory / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another sweep is writing to {directory} (its lock is held): wait for it or use another --out") from None
        yield
    finally:
        fh.close()


def _remove_stale_temporaries(parts: Path, out: Path) -> None:
    """Temporary files left by a killed writer (only ever renamed into place when complete)."""
    for tmp in list(parts.glob(".chunk-*.tmp")) + list(out.parent.glob(f".{out.name}.*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# ------------------------------------------------------------------------------------------------
# Executors


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_workers(workers) -> None:
    """``workers`` is ``None`` (the usable cores) or a whole number ≥ 1; anything else is a ValueError, raised
    before any work (a local cluster asked for ≤ 0 workers would otherwise wait for ever)."""
    if workers is None:
        return
    if isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a whole number ≥ 1 (worker processes of a local cluster), got {workers!r}; "
                         f"omit it to use the usable cores ({_usable_cores()})")


@dataclass(frozen=True)
class ExecutionOptions:
    """Where and how a sweep runs; validated on construction, before any planning or work.

    ``scheduler``: "auto", "in-process", "local", an address ``tcp://HOST:PORT`` or a ``distributed.Client``;
    ``workers``: local-cluster size (None: the usable cores); ``chunk_size``: parameter points per task (None:
    about :data:`SOLVES_PER_CHUNK` solves); ``resume``/``keep_chunks``: see :func:`run_sweep`.
    """

    scheduler: object = AUTO
    workers: int | None = None
    chunk_size: int | None = None
    resume: bool = False
    keep_chunks: bool = False

    def __post_init__(self):
        check_workers(self.workers)
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, (int, np.integer))
                                            or self.chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive whole number of parameter points, got {self.chunk_size!r}")
        for name in ("resume", "keep_chunks"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        sched = self.scheduler
        if not (sched is None or isinstance(sched, str) or (hasattr(sched, "submit") and hasattr(sched, "scheduler"))):
            raise ValueError(f"scheduler must be 'auto', 'in-process', 'local', an address or a distributed.Client, "
                             f"got {sched!r}")

    @classmethod
    def merged(cls, execution: ExecutionOptions | None = None, **fields) -> ExecutionOptions:
        """``execution`` (default: the defaults) with the fields given as keywords (``None``: keep) replaced."""
        return merge_options(cls, execution, "execution", fields)


def resolve_scheduler(scheduler: str | None, plan: SweepPlan, n_todo: int | None = None, workers: int | None = None) -> str:
    """``"in-process"``, ``"local"`` or a scheduler address, with ``"auto"``/``None`` decided (module docstring).

    ``auto`` with a number of ``workers`` means a local cluster of that size.
    """
    if scheduler in (None, AUTO):
        env = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip()
        if env and workers is None:
            return env
        if workers is not None:
            return LOCAL
        n_todo = len(plan.chunks) if n_todo is None else n_todo
        small = plan.n_solves < AUTO_LOCAL_SOLVES or n_todo < 2 or _usable_cores() < 2
        return IN_PROCESS if small else LOCAL
    if scheduler in (IN_PROCESS, LOCAL):
        return scheduler
    if hasattr(scheduler, "submit") and hasattr(scheduler, "scheduler"):  # a distributed.Client of the caller's
        return scheduler
    if isinstance(scheduler, str) and ("://" in scheduler or ":" in scheduler):
        return scheduler if "://" in scheduler else f"tcp://{scheduler}"
    raise ValueError(f"scheduler must be 'auto', 'in-process', 'local' or an address tcp://HOST:PORT, got {scheduler!r}")


def _run_in_process(plan: SweepPlan, todo: list[Chunk], on_result, progress, done: int):
    pass_progress = progress is not None and _accepts_progress(plan.solver)
    total = len(plan.chunks)
    for k, chunk in enumerate(todo):
        inner = (lambda f, k=k: progress((done + k + min(max(f, 0.0), 1.0)) / total)) if pass_progress else None
        ds = solve_chunk(plan.solver, plan.model, plan.initial, plan.chunk_vary(chunk), plan.arguments, plan.options, chunk.seed,
                         progress=inner)
        on_result(chunk, ds)
        if progress is not None:
            progress((done + k + 1) / total)


@contextlib.contextmanager
def _client(target: str, workers: int | None) -> Iterator:
    """A distributed Client on a new loopback LocalCluster (``"local"``) or on an existing scheduler."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if target == LOCAL:
        check_workers(workers)
        n = workers if workers is not None else _usable_cores()
        # The nanny's default MALLOC_TRIM_THRESHOLD_=65536 fixes glibc's otherwise adaptive thresholds; the
        # batched solvers allocate many mid-sized temporaries and cost 25 % more CPU with it (measured here:
        # 3.7 s → 4.7 s for 81 × 4 steady states at N_sp = 200). The statistical profiler (a stack sample every
        # 10 ms) is off: nobody looks at it here. Workers keep single-threaded BLAS/OpenMP.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                              "distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", worker_dashboard_address=None,
                                   silence_logs=logging.ERROR)
        with cluster, Client(cluster, set_as_default=False) as client:
            yield client, f"local cluster ({n} worker processes on 127.0.0.1)"
        return
    if workers is not None:
        raise ValueError("workers: the number of workers applies to a local cluster only (scheduler='local')")
    try:
        client = Client(target, set_as_default=False, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"could not connect to the Dask scheduler at {target}: {exc}") from None
    with client:
        yield client, f"Dask scheduler {target}"


def _run_dask(plan: SweepPlan, todo: list[Chunk], client, on_result, progress, done: int):
    from distributed import as_completed

    total = len(plan.chunks)
    futures = {}
    for chunk in todo:
        key = f"opendicke-sweep-{plan.key}-{chunk.index:05d}"
        fut = client.submit(solve_chunk, plan.solver, plan.model, plan.initial, plan.chunk_vary(chunk), plan.arguments, plan.options,
                            chunk.seed, key=key, pure=False)
        futures[fut.key] = (fut, chunk)
    try:
        for k, (fut, ds) in enumerate(as_completed([f for f, _ in futures.values()], loop=client.loop, with_results=True)):
            _, chunk = futures.pop(fut.key)
            on_result(chunk, ds)
            fut.release()  # the driver holds the result now: a worker lost later recomputes nothing
            if progress is not None:
                progress((done + k + 1) / total)
    finally:
        if futures:
            client.cancel([f for f, _ in futures.values()])


# ------------------------------------------------------------------------------------------------
# Combining


def _as_str(ds):
    """Object arrays of strings (as read back from NetCDF) → fixed-width str arrays, as the solvers make them."""
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype == object and var.size and all(isinstance(v, str) for v in var.values.ravel()):
            converted = var.astype(str)
            if name in ds.coords:
                ds = ds.assign_coords({name: converted})
            else:
                ds[name] = converted
    return ds


def _merge_attrs(attr_list: list[dict]) -> dict:
    """Attributes shared by all chunks as they are; ``all_succeeded`` is and-ed; others that differ are listed."""
    out = {}
    keys = dict.fromkeys(k for attrs in attr_list for k in attrs)
    for key in keys:
        values = [_plain(a[key]) for a in attr_list if key in a]
        # a one-element list attribute reads back from NetCDF as a scalar: the same value
        texts = list(dict.fromkeys(_json(v[0] if isinstance(v, list) and len(v) == 1 else v) for v in values))
        if len(texts) == 1:
            out[key] = next((v for v in values if isinstance(v, list)), values[0])
        elif key == "all_succeeded":
            out[key] = int(min(values))
        else:
            out[key] = "; ".join(str(json.loads(t)) for t in texts)
    return out


_CHUNK_KEYS = ("sweep_spec_hash", "sweep_chunk", "sweep_chunk_seed", "sweep_chunk_slices")
_PER_SEED_KEYS = ("model_json", "seed")
_EMPTY_GROUP_FILL = ("couplings", "group_size", "group_weight")  # exact for a group without spins


def combine_chunks(plan: SweepPlan, results: Mapping[int, object]):
    """One labelled Dataset from all chunk results ({chunk index: Dataset}).

    Without seeds it has exactly the layout (dimensions, coordinates, variables, dtypes) of one solver call over
    the whole grid. The numbers agree with such a call to round-off only, not bit for bit: the solvers'
    vectorised arithmetic rounds differently in batches of different sizes (measured for steady states: ≤ 1e-14
    in overlaps, identical classifications). Any given chunk layout is bit-reproducible, wherever it runs.
    With seeds, the per-seed results are stacked along ``seed`` and per-seed quantities (couplings, group sizes,
    ``model_json``) get that dimension.
    """
    import xarray as xr

    missing = [c.index for c in plan.chunks if c.index not in results]
    if missing:
        raise ValueError(f"cannot combine: chunks {missing[:10]}{'…' if len(missing) > 10 else ''} are missing")
    attr_list = [dict(results[c.index].attrs) for c in plan.chunks]
    per_seed = []
    for seed in (plan.seeds.tolist() if plan.seeds is not None else [None]):
        chunks = [c for c in plan.chunks if c.seed == seed]
        # drop_encoding: a chunk read back from disk carries its own on-disk encoding (e.g. fixed string widths),
        # which would otherwise be inherited by the combined variables and truncate longer strings when written
        parts = [_as_str(results[c.index].drop_encoding()) for c in chunks]
        for part in parts:
            part.attrs = {}
        if plan.grid_dims:
            n_blocks = [max(c.block[i] for c in chunks) + 1 for i in range(len(plan.grid_dims))]
            nested = np.empty(n_blocks, dtype=object)
            for c, ds in zip(chunks, parts):
                nested[c.block] = ds
            ds = xr.combine_nested(nested.tolist(), concat_dim=list(plan.grid_dims), data_vars="minimal",
                                   coords="minimal", compat="equals", join="exact", combine_attrs="drop")
        else:
            (ds,) = parts
        per_seed.append(ds)

    if plan.seeds is None:
        (ds,) = per_seed
        ds.attrs = {k: v for k, v in _merge_attrs(attr_list).items() if k not in _CHUNK_KEYS}
    else:
        import pandas as pd

        # seeds whose random patterns leave a group empty have fewer groups: pad them with empty groups
        fill = {name: 0 for name in _EMPTY_GROUP_FILL if name in per_seed[0].variables}
        ds = xr.concat(per_seed, dim=pd.Index(plan.seeds, name=SEED), data_vars="all", coords="different",
                       compat="equals", join="outer", combine_attrs="drop", **({"fill_value": fill} if fill else {}))
        models = []
        for seed in plan.seeds.tolist():
            first = next(c for c in plan.chunks if c.seed == seed)
            models.append(str(_plain(results[first.index].attrs.get("model_json", ""))))
        ds["model_json"] = ((SEED,), np.array(models, dtype=str))
        ds["model_json"].attrs["long_name"] = "the model of each pattern seed (JSON, with its patterns)"
        attrs = {k: v for k, v in _merge_attrs(attr_list).items() if k not in _CHUNK_KEYS + _PER_SEED_KEYS}
        attrs["model_json"] = json.dumps(plan.spec["model"])
        attrs["pattern_seeds"] = plan.seeds.tolist()
        attrs["patterns_note"] = "patterns drawn per seed: see coordinate 'seed' and variable 'model_json'"
        ds.attrs = attrs
        ds = ds.transpose(*plan.dims, ...)
    if "varied" in ds.attrs:
        ds.attrs["varied"] = ",".join(plan.dims)
    return ds


# ------------------------------------------------------------------------------------------------
# The entry point


def run_sweep(
    model: DickeModel,
    initial: InitialState | int | Sequence[InitialState | int] = 1,
    *,
    vary: Mapping[str, Sequence[float]] | None = None,
    solver: Callable | None = None,
    arguments: Mapping | None = None,
    options: object | None = None,
    out: str | os.PathLike | None = None,
    execution: ExecutionOptions | None = None,
    progress: Callable[[float], None] | None = None,
    plan: SweepPlan | None = None,
    scheduler: str | object | None = None,
    workers: int | None = None,
    chunk_size: int | None = None,
    resume: bool | None = None,
    keep_chunks: bool | None = None,
):
    """Run a sweep in chunks, in-process or on Dask, writing each finished chunk (see the module docstring).

    Parameters
    ----------
    model, initial, vary, solver, arguments, options:
        The work, as in :func:`plan_sweep` (or give a ready ``plan``).
    out:
        NetCDF file for the combined result. Chunks land in :func:`parts_directory` (``<out>.parts/``) as they
        finish. Without ``out`` nothing is written and nothing can be resumed.
    execution:
        Where and how the sweep runs: one :class:`ExecutionOptions`. ``scheduler``, ``workers``, ``chunk_size``,
        ``resume`` and ``keep_chunks`` given as keywords are shorthand for its fields: they replace the fields
        of ``execution`` and the whole is validated once, here, before any planning or work.
    scheduler:
        ``"auto"`` (default), ``"in-process"``, ``"local"``, an address ``"tcp://HOST:PORT"``, or a
        ``distributed.Client`` of your own (used as it is and left open).
    workers:
        Worker processes of a local cluster (default: the usable cores).
    resume:
        Reuse the finished chunk files of this same sweep (validated by spec hash, index and coordinates);
        compute only the rest. Without it, finished chunk files of this sweep are an error (never silently
        overwritten).
    keep_chunks:
        Keep the chunk files after the combined result is written.
    progress:
        Called with the finished fraction in [0, 1].

    Returns
    -------
    xarray.Dataset
        The combined result (:func:`combine_chunks`) with provenance attributes: the solver's own (model JSON,
        package version, options, ...) and ``sweep_spec`` (JSON: solver, model, initial states, grid, seeds,
        options, chunk layout, version), ``sweep_spec_hash``, ``sweep_executor``, ``sweep_chunks``,
        ``sweep_chunks_reused``, ``elapsed_seconds`` (wall time of the whole sweep). Per-point convergence flags are the solver's
        (``converged``/``classification`` for steady states, ``success`` for evolution).
    """
    ex = ExecutionOptions.merged(execution, scheduler=scheduler, workers=workers, chunk_size=chunk_size, resume=resume,
                                 keep_chunks=keep_chunks)  # validated before any work
    scheduler, workers, chunk_size, resume, keep_chunks = ex.scheduler, ex.workers, ex.chunk_size, ex.resume, ex.keep_chunks
    if resume and out is None:
        raise ValueError("resume needs out: the chunks of a sweep are kept beside its output file")
    if out is not None:
        from .io import check_writable

        check_writable(out)
    plan = plan or plan_sweep(model, initial, vary=vary, solver=solver, arguments=arguments, options=options,
                              chunk_size=chunk_size)
    t0 = time.perf_counter()
    if out is None:
        results: dict[int, object] = {}
        target = resolve_scheduler(scheduler, plan, workers=workers)
        description = _execute(plan, list(plan.chunks), target, workers, lambda c, ds: results.__setitem__(c.index, ds),
                               progress, 0)
        return _finish(plan, results, description, 0, t0)

    out = Path(out)
    parts = parts_directory(out)
    with _locked(parts):
        _remove_stale_temporaries(parts, out)
        if resume and out.exists():
            from .io import load_dataset

            with contextlib.suppress(Exception):
                done = load_dataset(out)
                if done.attrs.get("sweep_spec_hash") == plan.key:
                    done.attrs["sweep_chunks_reused"] = len(plan.chunks)
                    done.attrs["sweep_executor"] = f"already complete in {out} ({done.attrs.get('sweep_executor')})"
                    return done
        reused = [c for c in plan.chunks if (parts / plan.chunk_filename(c)).exists()]
        if reused and not resume:
            raise ValueError(f"{len(reused)} finished chunk(s) of this same sweep are in {parts}: pass resume "
                             f"(--resume) to continue it, or remove them to start again")
        reused = [c for c in reused if _valid_chunk_file(parts / plan.chunk_filename(c), plan, c)]
        if resume and not reused:
            others = [p for p in parts.glob(_CHUNK_GLOB) if plan.key not in p.name]
            if others:
                raise ValueError(f"resume: none of the {len(others)} chunk file(s) in {parts} belong to this sweep "
                                 f"(spec hash {plan.key}): the model, grid, starts, options or chunk size differ "
                                 f"(random patterns need the same --seed)")
        done_ids = {c.index for c in reused}
        todo = [c for c in plan.chunks if c.index not in done_ids]
        results = {}
        from .io import load_dataset, save_dataset

        def on_result(chunk, ds):
            ds = _storable(ds.assign_attrs(_chunk_attrs(plan, chunk)))
            save_dataset(ds, parts / plan.chunk_filename(chunk))
            results[chunk.index] = ds

        _write_spec(parts, plan)
        if progress is not None:
            progress(len(reused) / len(plan.chunks))
        target = resolve_scheduler(scheduler, plan, len(todo), workers) if todo else IN_PROCESS
        description = _execute(plan, todo, target, workers, on_result, progress, len(reused))
        for c in reused:
            results[c.index] = load_dataset(parts / plan.chunk_filename(c))
        ds = _storable(_finish(plan, results, description, len(reused), t0))
        save_dataset(ds, out)
        if not keep_chunks:
            for c in plan.chunks:
                with contextlib.suppress(FileNotFoundError):
                    (parts / plan.chunk_filename(c)).unlink()
            with contextlib.suppress(FileNotFoundError):
                (parts / f"sweep-{plan.key}.json").unlink()
    if not keep_chunks:
        with contextlib.suppress(OSError):
            (parts / ".lock").unlink()
            parts.rmdir()
    return ds


def _write_spec(parts: Path, plan: SweepPlan) -> None:
    """A human-readable record of what the chunk files with this hash are (written once)."""
    from .io import atomic_path

    path = parts / f"sweep-{plan.key}.json"
    if not path.exists():
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps({"spec_hash": plan.key, "chunks": len(plan.chunks), **plan.spec}, indent=1) + "\n")


def _execute(plan, todo, target, workers, on_result, progress, done) -> str:
    if not todo:
        return "nothing to compute"
    if target == IN_PROCESS:
        if workers is not None:
            raise ValueError("workers: the number of workers applies to a local cluster only (scheduler='local')")
        _run_in_process(plan, todo, on_result, progress, done)
        return IN_PROCESS
    if not isinstance(target, str):  # the caller's own Client: use it, leave it open
        _run_dask(plan, todo, target, on_result, progress, done)
        return f"Dask scheduler {target.scheduler.address}"
    with _client(target, workers) as (client, description):
        _run_dask(plan, todo, client, on_result, progress, done)
    return description


def _finish(plan, results, description, n_reused, t0):
    ds = combine_chunks(plan, results)
    finish = getattr(plan.solver, "sweep_finish", None)
    if finish is not None:  # quantities of the whole grid (e.g. a fit over all chunks), before anything is written
        ds = finish(ds)
    ds.attrs.update({
        "sweep_spec": _json(plan.spec),
        "sweep_spec_hash": plan.key,
        "sweep_executor": description,
        "sweep_chunks": len(plan.chunks),
        "sweep_chunks_reused": n_reused,
        "elapsed_seconds": round(time.perf_counter() - t0, 3),
    })
    return ds


# ------------------------------------------------------------------------------------------------
# Adapters: studies that are not a solver over model parameters


def convergence_task(model: DickeModel, initial, *, vary, t_final: float = 10.0, times: int = 101, seed: int | None = 0,
                     fit_from: int = 0, options=None, progress=None):
    """:func:`~opendicke.quantum.convergence.convergence_study` as a sweep solver: ``vary={"n_spins": [...]}``.

    Each N_sp is worth a task of its own (:func:`_convergence_solves`); ``t_final``, ``times``, ``seed`` and
    ``fit_from`` are the study's (a sweep's ``arguments``), ``options`` the exact solver's
    :class:`~opendicke.quantum.QuantumOptions`. The per-size method is kept as a variable until
    :func:`_convergence_finish` fits the power law over all sizes and restores the study's attributes.
    """
    from .quantum.convergence import convergence_study

    if set(vary) != {"n_spins"}:
        raise ValueError(f"convergence_task varies the number of spins only (vary={{'n_spins': ...}}), got {sorted(vary)}")
    sizes = np.asarray(vary["n_spins"], dtype=float)
    if np.any(sizes != np.round(sizes)) or np.any(sizes < 1):
        raise ValueError(f"n_spins must be positive whole numbers, got {sizes.tolist()}")
    ds = convergence_study(model, sizes.astype(int).tolist(), initial, t_final=t_final, times=times, seed=seed,
                           fit_from=fit_from, options=options, progress=progress)
    ds["method"] = (("n_spins",), np.array(ds.attrs.pop("methods").split(","), dtype=str))
    for key in ("slope", "prefactor"):
        ds.attrs.pop(key)
    return ds


def _convergence_solves(model, initial, options) -> int:
    return SOLVES_PER_CHUNK  # one exact finite-N run outweighs a task's overhead: one task per N_sp by default


def _convergence_finish(ds):
    from .quantum.convergence import fit_deviation

    slope, prefactor = fit_deviation(ds["n_spins"].values, ds["deviation"].values, ds.attrs.get("fit_from", 0))
    methods = ",".join(str(m) for m in ds["method"].values)
    ds = ds.drop_vars("method")
    ds.attrs.update({"slope": slope, "prefactor": prefactor, "methods": methods})
    return ds


convergence_task.sweep_axes = ("n_spins",)
convergence_task.sweep_spin_rates = True  # the permutation-invariant exact solver takes them
convergence_task.sweep_solves_per_point = _convergence_solves
convergence_task.sweep_finish = _convergence_finish
