"""How numerical settings reach a solver: one frozen, validated options object per solver family.

:class:`~opendicke.meanfield.evolution.EvolveOptions` (mean-field integration),
:class:`~opendicke.meanfield.steady.SteadyStateOptions` (steady states and the memory experiments),
:class:`~opendicke.quantum.QuantumOptions` (exact dynamics), :class:`~opendicke.fluctuations.CumulantOptions` and
:class:`~opendicke.fluctuations.TWAOptions` (fluctuations) and :class:`~opendicke.sweep.ExecutionOptions` (where a
sweep runs). Each is checked when it is built, so bad values fail before any work, and is passed down
as one object: no layer below a public entry point takes loose option keywords. Where a public entry point
also names some fields as keywords (``evolve(..., rtol=1e-9)``, ``run_sweep(..., workers=2)``), these are
shorthand, turned into the object on entry by :func:`merge_options`.
"""

from __future__ import annotations

import dataclasses


def merge_options(cls: type, given, name: str, fields: dict):
    """``given`` (an instance of ``cls``, or ``None`` for the defaults) with the ``fields`` that are not ``None``
    replaced; the result is validated by ``cls`` itself. Anything but a ``cls`` (a dict, say) is a TypeError."""
    if given is not None and not isinstance(given, cls):
        raise TypeError(f"{name} must be a {cls.__name__}, got {type(given).__name__}")
    changes = {key: value for key, value in fields.items() if value is not None}
    base = given if given is not None else cls()
    return dataclasses.replace(base, **changes) if changes else base
