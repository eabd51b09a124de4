"""examples/quickstart.ipynb: stored without outputs, and it runs top to bottom in a real kernel.

The kernel is this interpreter (the project's venv), named by a kernel spec written to a
temporary folder: nothing is installed into the user's Jupyter folders, and the kernel's runtime
files and IPython profile live in the test's temporary folder too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
KERNEL = "sedc-test-venv"
# Appended to the executed copy only: rendering figures must leave no pyplot state behind.
NO_PYPLOT = "import sys\nassert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"


def read_notebook():
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_stored_without_outputs():
    nb = read_notebook()
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) >= 8
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"code cells stored with outputs or execution counts: {dirty} (clear them)"


def test_the_readme_links_the_notebook():
    readme = (NOTEBOOK.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "(examples/quickstart.ipynb)" in readme


def kernel_manager(folder: Path):
    """A KernelManager that starts ``sys.executable -m ipykernel_launcher``, found nowhere else."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sedc (this venv)", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run top to bottom (any cell error fails here), with its wall time."""
    import nbformat
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("notebook")
    nb = read_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(NO_PYPLOT))
    env = {**os.environ, "IPYTHONDIR": str(folder / "ipython"), "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
           # One thread: the notebook shares the machine's two cores with the rest of the suite.
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_RUNTIME_DIR", env["JUPYTER_RUNTIME_DIR"])  # the connection file
        client = NotebookClient(nb, km=kernel_manager(folder), timeout=600, kernel_name=KERNEL,
                                resources={"metadata": {"path": str(folder)}})
        started = time.perf_counter()
        client.execute(env=env)
        elapsed = time.perf_counter() - started
    print(f"\nexamples/quickstart.ipynb ran in {elapsed:.1f} s")
    return nb, elapsed


def results_of(nb) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.output_type == "execute_result"]


@pytest.mark.slow
def test_the_notebook_runs_and_shows_explanations_inline(executed):
    nb, _ = executed
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors
    explanations = [out for out in results_of(nb) if out.data["text/plain"].startswith("Explanation(")]
    assert len(explanations) >= 4  # one prediction, SEDC-T, pruned, your own model
    for out in explanations:
        assert out.data["image/png"] and out.data["text/html"].startswith("<div class='sedc-explanation'")
    assert "Egyptian cat" in explanations[0].data["text/html"]  # the loaded model's class names


@pytest.mark.slow
def test_the_notebook_galleries_show_every_result_and_the_failed_image(executed):
    nb, _ = executed
    galleries = [out.data["text/html"] for out in results_of(nb)
                 if out.data["text/plain"].startswith("Gallery(")]
    assert len(galleries) == 2
    fills, many = galleries
    assert fills.count("sedc-explanation") == 2
    assert many.count("sedc-explanation") == 4 and many.count("failed</b>") == 1
    assert "float image values must lie in [0, 1]" in many
