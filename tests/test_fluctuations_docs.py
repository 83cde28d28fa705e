"""docs/tutorials/fluctuations.md runs as written."""

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "fluctuations.md"


def test_tutorial_runs():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    ds = namespace["ds"]
    assert abs(float(ds["overlap"].sel(pattern=1)[0]) - 1.0) < 1e-12
