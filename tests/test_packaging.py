"""The wheel: built without packaging warnings, holding the package data and the seed's module,
and working from a fresh virtual environment (``sedc --version``).

The fresh environment gets the wheel without its dependencies (torch costs minutes to install);
a ``.pth`` file lends it this environment's site-packages for them. A path in a ``.pth`` file is
appended to ``sys.path`` without its own ``.pth`` files being read, so the editable install of
this checkout stays out, and the test checks that ``sedc`` comes from the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")
WARNINGS = ("Warning", "deprecated", "!!")  # setuptools' banners: BuildBackendWarning, ... !!


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel, built by pip from a copy of the sources (no build/ or egg-info left here)."""
    folder = tmp_path_factory.mktemp("wheel")
    project = folder / "project"
    project.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, project / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(project), "--no-deps", "-w", str(folder / "dist")],
                         capture_output=True, text=True, check=True)
    (built,) = (folder / "dist").glob("sedc-*.whl")
    return built, out.stdout + out.stderr


@pytest.mark.slow
def test_the_build_prints_no_packaging_warning(wheel):
    _, log = wheel
    backend = [line for line in log.splitlines() if not line.startswith("WARNING: Location")]
    assert not [line for line in backend if any(word in line for word in WARNINGS)], "\n".join(backend)


@pytest.mark.slow
def test_the_wheel_holds_the_package_data_the_seed_module_and_the_license(wheel):
    path, _ = wheel
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        metadata = archive.read("sedc-0.1.0.dist-info/METADATA").decode()
    assert {"sedc/models/imagenet_wnids.txt", "sedc_pytorch.py", "sedc/display/notebook.py",
            "sedc-0.1.0.dist-info/licenses/LICENSE"} <= names
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata


@pytest.mark.slow
def test_the_installed_wheel_runs_in_a_fresh_environment(wheel, tmp_path):
    path, _ = wheel
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    python = fresh / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(path)], capture_output=True, text=True, check=True)

    version = subprocess.run([str(fresh / "bin" / "sedc"), "--version"], capture_output=True, text=True,
                             check=True, cwd=tmp_path)
    assert version.stdout.strip() == "sedc 0.1.0"
    code = ("import sedc, sedc_pytorch; from sedc.models.labels import imagenet_wnids; "
            "print(sedc.__file__); print(sedc_pytorch.__file__); print(len(imagenet_wnids()))")
    where = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where[:2]), where  # the wheel's, not this checkout's
    assert where[2] == "1000"
