"""The README's Python tour runs as written (so the front page never drifts from the API)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_tour_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md tour", "exec"), namespace)  # noqa: S102
    st = namespace["st"]
    assert (st["classification"].values == "stable").all()
