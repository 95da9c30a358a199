"""examples/explore.ipynb, executed in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")  # in the test extra; skipped only by hand-made envs
nbformat = pytest.importorskip("nbformat")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "explore.ipynb"


def text_output(cell: dict) -> str:
    parts = []
    for output in cell["outputs"]:
        if output.get("output_type") == "execute_result":
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.mark.notebook
def test_explore_notebook_runs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3")
    client.execute()  # raises CellExecutionError on any failing cell
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "Hello, notebook!" in text_output(code[3])
    assert "<table>" in code[2]["outputs"][0]["data"]["text/html"]
    assert text_output(code[4]) == "[('3', 'chunk'), ('4', 'done')]"
    assert text_output(code[5]) == "('CLOSED', '4', {})"
