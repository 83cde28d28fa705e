"""Shared pieces of the command line: model options, errors, JSON output, progress bars.

The CLI does no physics: it turns options into a model and calls the public API.
"""


import functools
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ..model import paper_model

PAPER_DEFAULTS = paper_model().to_dict()

# Options every model command accepts (docs/physics-notes.md, Conventions names; flags override --config).
_MODEL_OPTIONS = {
    "config": (Optional[Path], typer.Option("--config", help="Model file (TOML) with omega, omega_modes, kappa, g0, n_spins, seed, patterns.", rich_help_panel="Model")),
    "omega": (Optional[float], typer.Option("--omega", help="Spin frequency Ω. Default: the paper's Fig. 3 model (Ω = 0.5).", rich_help_panel="Model")),
    "omega_modes": (Optional[str], typer.Option("--omega-modes", help="Mode frequencies Ω_μ, comma separated; their number is M. Default 1.5,2,2.5,3.", rich_help_panel="Model")),
    "kappa": (Optional[str], typer.Option("--kappa", help="Loss rate(s) κ: one value or M comma-separated values. Default 1.", rich_help_panel="Model")),
    "g0": (Optional[float], typer.Option("--g0", help="Spin-boson coupling g0. Default 1.", rich_help_panel="Model")),
    "n_spins": (Optional[int], typer.Option("--n-spins", help="Number of spins N_sp (random patterns); omit for the thermodynamic limit.", rich_help_panel="Model")),
    "seed": (Optional[int], typer.Option("--seed", help="Seed of the random patterns.", rich_help_panel="Model")),
    "patterns": (Optional[str], typer.Option("--patterns", help="Explicit patterns, rows of + and - separated by commas, e.g. \"++-+,+-+-\" (implies N_sp).", rich_help_panel="Model")),
    "gamma_down": (Optional[float], typer.Option("--gamma-down", help="Individual spin decay rate γ↓ (jump √γ↓ σ_-). Default 0.", rich_help_panel="Model")),
    "gamma_up": (Optional[float], typer.Option("--gamma-up", help="Individual spin pumping rate γ↑ (jump √γ↑ σ_+). Default 0.", rich_help_panel="Model")),
    "gamma_phi": (Optional[float], typer.Option("--gamma-phi", help="Individual spin dephasing rate γφ (jump √(γφ/2) σ_z). Default 0.", rich_help_panel="Model")),
}
MODEL_OPTION_NAMES = tuple(_MODEL_OPTIONS)


def fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _floats(name: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{name}: expected at least one number")
    return values


def build_model(config=None, omega=None, omega_modes=None, kappa=None, g0=None, n_spins=None, seed=None, patterns=None,
                gamma_down=None, gamma_up=None, gamma_phi=None):
    """The model from a TOML file (missing fields: the paper's Fig. 3 model) with command-line flags on top."""
    from ..io import merge_with_defaults, model_from_dict, read_model_file
    from ..model import parse_patterns

    data = dict(read_model_file(config)) if config is not None else {}
    if omega_modes is not None:
        data["omega_modes"] = _floats("--omega-modes", omega_modes)
        if kappa is None and isinstance(data.get("kappa"), list) and len(set(data["kappa"])) == 1:
            data["kappa"] = data["kappa"][0]
    for key, value in (("omega", omega), ("g0", g0), ("gamma_down", gamma_down), ("gamma_up", gamma_up), ("gamma_phi", gamma_phi)):
        if value is not None:
            data[key] = value
    if kappa is not None:
        values = _floats("--kappa", kappa)
        data["kappa"] = values[0] if len(values) == 1 else values
    if seed is not None and seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}")
    if n_spins is not None and n_spins < 1:
        raise ValueError(f"--n-spins must be ≥ 1, got {n_spins}")
    if patterns is not None:
        data["patterns"] = parse_patterns(patterns)
        if n_spins is not None and n_spins != data["patterns"].shape[1]:
            raise ValueError(f"--n-spins {n_spins} disagrees with --patterns ({data['patterns'].shape[1]} spins per row)")
        data.pop("n_spins", None)
        data.pop("seed", None)
    elif n_spins is not None or seed is not None:
        data.pop("patterns", None)
        if n_spins is not None:
            data["n_spins"] = n_spins
        if seed is not None:
            data["seed"] = seed
        if "n_spins" not in data:
            raise ValueError("--seed needs --n-spins (random patterns exist only for a finite number of spins)")
    try:
        return model_from_dict(merge_with_defaults(data))
    except ValueError as exc:
        if config is None:
            raise
        raise ValueError(f"{config} (with the command-line flags on top): {exc}") from None


# Commands whose solvers do not take the individual spin rates yet (issue 15): refuse them rather than ignore them.
_NO_SPIN_RATES_YET = {
    name: f"{label} does not take the spin rates --gamma-down/--gamma-up/--gamma-phi yet (supported: evolve, "
          "quantum, steady, sweep, convergence, fluctuations --method cumulant, memory transient)"
    for name, label in (("theory", "theory (Eq. 12 holds without spin dissipation; see docs/spin-dissipation.md)"),
                        ("map_command", "memory map"),
                        ("which_command", "memory which"), ("stability_command", "memory stability"),
                        ("census_command", "memory census"), ("crosstalk_command", "memory crosstalk"))
}


def model_command(func=None, *, omit: tuple[str, ...] = ()):
    """Give a command the model options and pass it the built model as ``model``; ValueErrors exit cleanly.

    ``omit`` leaves some model options out (a command that defines its own ``--n-spins``, say); the
    command then receives those option values itself and the model is built without them.
    """
    if func is None:
        return lambda f: model_command(f, omit=omit)
    sig = inspect.signature(func)
    names = [name for name in MODEL_OPTION_NAMES if name not in omit]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[tp, opt])
        for name, (tp, opt) in _MODEL_OPTIONS.items() if name in names
    ]

    @functools.wraps(func)
    def wrapper(**kwargs):
        options = {name: kwargs.pop(name) for name in names}
        try:
            model = build_model(**options)
            if model.spin_dissipation and func.__name__ in _NO_SPIN_RATES_YET:
                raise ValueError(_NO_SPIN_RATES_YET[func.__name__])
            return func(model=model, **kwargs)
        except ValueError as exc:
            fail(str(exc))

    params = [p for p in sig.parameters.values() if p.name != "model"] + extra
    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper


def plain(value):
    """numpy → JSON-ready Python (NaN/inf become null)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise TypeError("complex values need explicit real/imaginary parts in JSON")
    out = arr.tolist()

    def clean(x):
        if isinstance(x, list):
            return [clean(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    return clean(out)


def print_json(obj: dict) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def console(stderr: bool = False):
    """A rich Console that never cuts numbers: at a terminal it uses the terminal's width; piped or redirected
    (not a TTY) it gets a width no table reaches, so tables keep every digit instead of shrinking to 80 columns."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH, no_color=True, highlight=False)


#: Console width when the output is not a terminal (wide enough for every table the CLI prints).
PIPED_WIDTH = 400


def check_out(path, *, directory: bool = False, option: str = "--out"):
    """Fail (exit 2) before any work when ``path`` cannot be written (see :func:`opendicke.io.check_writable`)."""
    if path is None:
        return None
    from ..io import check_writable

    try:
        return check_writable(path, directory=directory, option=option)
    except ValueError as exc:
        fail(str(exc))


class Progress:
    """Progress on stderr, driven by fractions in [0, 1]; silent when disabled.

    At a terminal: a rich progress bar. Otherwise (stderr redirected to a log file or a pipe): plain lines
    ``DESCRIPTION: 40 % after 12.3 s``, one per 10 % of progress and at most one every :attr:`LOG_INTERVAL`
    seconds, and a final ``DESCRIPTION: done in T s``.
    """

    LOG_INTERVAL = 2.0

    def __init__(self, description: str, enabled: bool = True):
        self.enabled = enabled
        self.bar = enabled and sys.stderr.isatty()
        self.description = description

    def __enter__(self):
        import time

        self._t0 = time.perf_counter()
        self._last_time = -float("inf")
        self._last_step = 0
        if self.bar:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                     TimeElapsedColumn(), console=console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=1.0)
        return self

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self.bar:
            self._bar.update(self._task, completed=fraction)
            return
        import time

        now = time.perf_counter()
        step = int(fraction * 10)
        if step > self._last_step and step < 10 and now - self._last_time >= self.LOG_INTERVAL:
            self._last_step, self._last_time = step, now
            sys.stderr.write(f"{self.description}: {10 * step} % after {now - self._t0:.1f} s\n")
            sys.stderr.flush()

    def __exit__(self, *exc):
        if self.bar:
            self._bar.__exit__(*exc)
        elif self.enabled and exc[0] is None:
            import time

            sys.stderr.write(f"{self.description}: done in {time.perf_counter() - self._t0:.1f} s\n")
            sys.stderr.flush()
        return False


def _no_type_for_flags() -> None:
    """Typer ≥ 0.2x shows a type column ``<bool>`` for flags, which take no value (``--json``, ``--help``): users
    then write ``--json true`` and get an error. Show no type for flags; every other option keeps its type."""
    option = getattr(getattr(typer, "core", None), "TyperOption", None)
    original = getattr(option, "display_type_rich", None)
    if original is None or getattr(original, "_opendicke", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) and not getattr(self, "secondary_opts", None) else original(self, ctx)

    display_type_rich._opendicke = True
    option.display_type_rich = display_type_rich


_no_type_for_flags()


# Start options shared by evolve, steady and quantum (the start is pattern NU, possibly corrupted or mirrored).
PatternOption = Annotated[int, typer.Option("--pattern", help="Start from pattern NU (1..M).")]
FlipOption = Annotated[Optional[float], typer.Option(
    "--flip", help="Corrupt the start: flip this fraction of the spins (evenly per group in the thermodynamic limit).")]
FlipSeedOption = Annotated[int, typer.Option("--flip-seed", help="Seed choosing the flipped spins (finite N_sp).")]
MirrorOption = Annotated[bool, typer.Option("--mirror", help="Start from the mirror pattern (all spins reversed).")]


def start_states(model, pattern, flip=None, flip_seed: int = 0, mirror: bool = False) -> list:
    """Initial states from the start options: ``pattern`` is a number (1..M) or "all"; ``flip`` corrupts them."""
    from ..states import CorruptedPattern, PatternState

    if str(pattern) == "all":
        numbers = list(range(1, model.n_modes + 1))
    else:
        try:
            numbers = [int(pattern)]
        except ValueError:
            raise ValueError(f"--pattern must be 'all' or a pattern number 1..{model.n_modes}, got {pattern!r}") from None
    sign = -1 if mirror else 1
    if flip is None:
        return [PatternState(n, sign=sign) for n in numbers]
    return [CorruptedPattern(n, flip=flip, seed=flip_seed, sign=sign) for n in numbers]


MemoryBudgetOption = Annotated[Optional[str], typer.Option(
    "--memory-budget", help="Memory the computation may use, e.g. 8GiB or 500MB (default 2GiB): the need is estimated "
    "before anything large is allocated, and a larger need is refused with the number of bytes.")]


# Execution options of the chunked sweeps (``sweep``, ``memory map``): one definition, shared.
SchedulerOption = Annotated[Optional[str], typer.Option(
    "--scheduler", help="auto | in-process | local | tcp://HOST:PORT (an existing Dask cluster). Default auto: "
    "$DASK_SCHEDULER_ADDRESS if set, else in-process for small work and a local cluster (loopback only) for large work.",
    rich_help_panel="Execution")]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", help="Worker processes of a local cluster (default: the usable cores).", rich_help_panel="Execution")]
ChunkSizeOption = Annotated[Optional[int], typer.Option(
    "--chunk-size", help="Grid points per task (default: about 1024 solves per task).", rich_help_panel="Execution")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Continue a killed run with the same options and --out: finished chunks are reused, not "
    "recomputed.", rich_help_panel="Execution")]
KeepChunksOption = Annotated[bool, typer.Option(
    "--keep-chunks", help="Keep OUT.parts/ after writing OUT.", rich_help_panel="Execution")]


def run_chunked(description: str, *, out, resume: bool, scheduler, workers, chunk_size, keep_chunks: bool,
                model, initial, vary, solver=None, arguments=None, options=None, progress: bool = True):
    """:func:`opendicke.sweep.run_sweep` with the execution options above, a progress bar and the CLI's errors.

    The sweep: ``model``, ``initial``, ``vary``, ``solver``, ``arguments``, ``options``. A failure or Ctrl-C after chunks finished
    exits 1 and says how many chunk files are kept for ``--resume``; bad options are ValueErrors (exit 2).
    """
    from ..sweep import ExecutionOptions, parts_directory, run_sweep

    if resume and out is None:
        raise ValueError("--resume needs --out (the finished chunks live beside the output file)")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be ≥ 1 (worker processes of a local cluster), got {workers}; omit it to "
                         f"use every usable core")
    check_out(out)
    try:
        with Progress(description, enabled=progress) as bar:
            execution = ExecutionOptions(scheduler=scheduler, workers=workers, chunk_size=chunk_size, resume=resume,
                                         keep_chunks=keep_chunks)
            return run_sweep(model, initial, vary=vary, solver=solver, arguments=arguments, options=options, out=out,
                             execution=execution, progress=bar)
    except (Exception, KeyboardInterrupt) as exc:
        if isinstance(exc, ValueError) or out is None:
            raise
        parts = parts_directory(out)
        kept = len(list(parts.glob("chunk-*.nc"))) if parts.is_dir() else 0
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        fail(f"{message}; {kept} finished chunk file(s) kept in {parts}: rerun with --resume to continue", code=1)


def chunk_summary(ds) -> str:
    """"N chunks (R reused, C computed) on EXECUTOR" from a sweep result's attributes."""
    n_chunks, reused = ds.attrs["sweep_chunks"], ds.attrs["sweep_chunks_reused"]
    return f"{n_chunks} chunks ({reused} reused, {n_chunks - reused} computed) on {ds.attrs['sweep_executor']}"


def titled_table(title: str):
    """A rich Table whose title stays on one line (rich would wrap it to the table's width)."""
    from rich.table import Table
    from rich.text import Text

    return Table(title=Text(title, no_wrap=True, overflow="ignore"), title_justify="left")
