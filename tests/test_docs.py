"""Docs that run: every ```python block of every page under docs/ is executed
here, as tests/test_readme.py runs the README's (the machinery and the
markers for a block that cannot run: tests/_blocks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._blocks import ROOT, Block, blocks, cases, compile_block, run_block

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
BLOCKS = [block for page in PAGES for block in blocks(page)]


@pytest.mark.parametrize(("block", "backend"), list(cases(BLOCKS)))
def test_docs_block(block: Block, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block, backend)


def test_every_page_is_read() -> None:
    names = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert {"index.md", "guides/testing.md", "migrating/httpx-sse.md"} <= names
    assert len(BLOCKS) >= 30
    assert all(compile_block(block) for block in BLOCKS)  # marked ones are valid Python too


def test_a_block_that_does_not_run_says_why() -> None:
    # The marker must be the line right before the fence, and give a reason.
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"not run", text):
            line = text[text.rfind("\n", 0, match.start()) + 1 : text.find("\n", match.end())]
            if line.startswith("<!--"):
                after = text[text.find("\n", match.end()) + 1 :]
                assert after.startswith("```python"), f"{page}: a marker not before a block"


def test_a_fence_with_a_title_is_a_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```python title="httpx-sse 0.4.3"\nx = 1\n```\n\n```pythonic\ny\n```\n')
    assert [(b.line, b.code) for b in blocks(page)] == [(2, "x = 1\n")]


def test_no_python_block_hides_under_another_name() -> None:
    # ```py or ```python3 would be highlighted as Python but never run.
    for page in PAGES:
        for fence in re.findall(r"^```(\w+)", page.read_text(encoding="utf-8"), re.M):
            assert fence == "python" or "py" not in fence, f"{page}: ```{fence}"


def test_the_reference_documents_every_public_name() -> None:
    import eventsource
    import eventsource.testing

    text = "".join(page.read_text(encoding="utf-8") for page in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)$", text, re.M))
    public = {f"eventsource.{name}" for name in eventsource.__all__ if name != "__version__"}
    public |= {f"eventsource.testing.{name}" for name in eventsource.testing.__all__}
    assert public - documented == set()
    assert documented - public == set()  # nothing private, nothing renamed away
