"""The README's Python tour runs as written (so the front page never drifts from the API)."""

import ast
import re
from pathlib import Path

import pytest

import opendicke

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    return blocks[0]


def test_python_tour_names_exist():
    """Fast representative of the tour test: the tour parses and every ``od.NAME`` it uses exists."""
    tree = ast.parse(_tour())
    names = {node.attr for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "od"}
    assert names and not [n for n in names if not hasattr(opendicke, n)]


@pytest.mark.slow  # ≈ 70 s at load 13: runs the whole tour
def test_python_tour_runs():
    namespace: dict = {}
    exec(compile(_tour(), "README.md tour", "exec"), namespace)  # noqa: S102
    st = namespace["st"]
    assert (st["classification"].values == "stable").all()
