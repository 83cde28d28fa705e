"""Public names of a package keep the package's address, whichever of its files defines them."""

from __future__ import annotations


def keep_package_address(namespace: dict) -> None:
    """Set ``__module__`` of the callables named in ``namespace["__all__"]`` to the package's name.

    Users, docs and stored sweep specs know ``opendicke.memory.recognition_map_task`` and
    ``opendicke.meanfield.steady.steady_state``; splitting a module into a package must not change that.
    """
    package = namespace["__name__"]
    for name in namespace["__all__"]:
        obj = namespace[name]
        if callable(obj) and getattr(obj, "__module__", "").startswith(package + "."):
            obj.__module__ = package
