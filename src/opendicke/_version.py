"""The package version, defined here and nowhere else.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), ``opendicke.__version__`` re-exports it, and every
result records it; modules import it from here, never from the package ``__init__``.
"""

__version__ = "0.1.0"
