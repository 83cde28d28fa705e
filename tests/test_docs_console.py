"""The command-line examples quoted in README.md and docs/**/*.md print the numbers they quote.

Convention: a fenced ```console block; lines starting with ``$ `` are commands (``opendicke ...``), the lines
after a command up to the next command are its expected output. Every number in the expected output must
appear, in order, in what the command prints, to a relative tolerance of ``RTOL`` or as the printed value
rounded to the quoted digits (numbers quoted as integers must match exactly). A block whose preceding line is ``<!-- no-check -->`` is skipped (slow or
machine-dependent examples). Each command runs in a subprocess with a 120 s limit, so a block should quote
cheap commands only.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-4
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
SKIP = "<!-- no-check -->"


def console_examples(text: str) -> list[tuple[int, str, str]]:
    """(line number, command, expected output) for every command of every checked console block."""
    lines = text.splitlines()
    examples = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```console":
            skip = i > 0 and lines[i - 1].strip() == SKIP
            j = i + 1
            block = []
            while j < len(lines) and lines[j].strip() != "```":
                block.append((j + 1, lines[j]))
                j += 1
            if not skip:
                current = None
                for number, line in block:
                    if line.startswith("$ "):
                        if current:
                            examples.append(current)
                        current = [number, line[2:].strip(), ""]
                    elif current is not None:
                        current[2] += line + "\n"
                if current:
                    examples.append(current)
            i = j
        i += 1
    return [tuple(e) for e in examples]


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def matches(expected: str, printed: str) -> str | None:
    """None if every number quoted in ``expected`` appears in order in ``printed``; else what is missing."""
    got = numbers(printed)
    k = 0
    for want in numbers(expected):
        w = float(want)
        exact = re.fullmatch(r"[-+]?\d+", want) is not None
        while k < len(got):
            g = float(got[k])
            k += 1
            if exact:
                ok = g == w
            else:  # within the relative tolerance, or the quote is the printed value rounded to its digits
                ok = abs(g - w) <= RTOL * abs(w) or abs(g - w) <= 0.5 * 10 ** _last_digit(want) * (1 + 1e-9)
            if ok:
                break
        else:
            return f"quoted number {want} not printed (in order)"
    return None


def _last_digit(text: str) -> int:
    """Exponent of the last quoted digit: 0.6455 → -4 (a quoted number may be a rounding of the printed one)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return -decimals + (int(exponent) if exponent else 0)


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _examples():
    out = []
    for doc in _documents():
        if doc.exists():
            for line, command, expected in console_examples(doc.read_text()):
                out.append(pytest.param(command, expected, id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


def test_the_convention_is_parsed_and_numbers_are_compared():
    text = ("```console\n$ opendicke theory\n  a 0.6455 b 12\n$ opendicke x\n```\n\n"
            "<!-- no-check -->\n```console\n$ opendicke slow\n1.0\n```\n")
    assert console_examples(text) == [(2, "opendicke theory", "  a 0.6455 b 12\n"), (4, "opendicke x", "")]
    assert matches("0.6455 and 12", "x 0.645497 y 12") is None  # a rounded quote matches the printed value
    assert matches("0.6455 and 12", "x 0.6461 y 12") is not None
    assert matches("12", "x 13") is not None
    assert matches("1.0e-3", "1.00004e-3") is None


@pytest.mark.parametrize("command, expected", _examples())
def test_quoted_cli_examples_print_the_quoted_numbers(command, expected):
    args = shlex.split(command)
    assert args[0] == "opendicke", f"console blocks run opendicke commands only, got {command!r}"
    exe = Path(sys.executable).parent / "opendicke"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    result = subprocess.run([str(exe), *args[1:]], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    problem = matches(expected, result.stdout)
    assert problem is None, f"{command}: {problem}\n--- printed ---\n{result.stdout}"
