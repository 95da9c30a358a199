"""The public API's types reject wrong callbacks: mypy --strict on a file of
right usages reports nothing, and on a file of wrong ones one error on every
line marked ``# error`` and nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent / "typecheck"


def mypy(path: Path) -> tuple[str, int]:
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--show-error-codes", "--no-error-summary", str(path)]
    )
    return out + err, status


def test_right_usages_pass_mypy_strict() -> None:
    out, status = mypy(HERE / "good_usage.py")
    assert status == 0, out


def test_each_wrong_usage_is_an_error() -> None:
    path = HERE / "bad_usage.py"
    marked = {
        number
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.endswith("# error")
    }
    out, status = mypy(path)
    reported = {int(n) for n in re.findall(rf"{re.escape(path.name)}:(\d+): error", out)}
    assert status == 1
    assert reported == marked, out
