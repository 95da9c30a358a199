"""Docs that run: every ```python block of README.md is executed here, so an
example can never again be wrong. How a block runs, and the markers for one
that cannot: tests/_blocks.py (docs/*.md: tests/test_docs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._blocks import ROOT, Block, cases, compile_block, run_block
from tests._blocks import blocks as page_blocks

README = ROOT / "README.md"


def blocks() -> list[Block]:
    return page_blocks(README)


@pytest.mark.parametrize(("block", "backend"), list(cases(blocks())))
def test_readme_block(block: Block, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block, backend)


def test_every_python_block_is_found() -> None:
    found = blocks()
    assert len(found) >= 3  # async, sync, testing: the rest is on the docs site
    assert all(compile_block(block) for block in found)  # marked ones are valid Python too
    # the README's first lines, the set-up commands, are a shell block, not run
    assert README.read_text(encoding="utf-8").startswith("# eventsource\n\n```sh\n")


def test_a_marker_skips_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- not run: needs a real API -->\n```python\nboom()\n```\n\n"
        "```python\n# not run: a sketch\nboom()\n```\n\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(f"{__name__}.README", readme)
    assert [(b.line, b.skip) for b in blocks()] == [
        (3, "needs a real API"),
        (7, "a sketch"),
        (12, None),
    ]
    assert json.dumps([b.code for b in blocks()][2]) == '"x = 1\\n"'
    assert {b.page for b in blocks()} == {"README.md"}
