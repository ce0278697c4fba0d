"""The session guard of tests/conftest.py: a test session that leaves anything in the temp dir
(itself or through a subprocess) fails, naming what it left; a clean one passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

LEAKY = """
import os, subprocess, sys, tempfile

def test_leaks():
    tempfile.mkdtemp(prefix="leaked-dir-")
    code = "import os, tempfile; os.mkdir(os.path.join(tempfile.gettempdir(), 'osiris-leaked'))"
    subprocess.run([sys.executable, "-c", code], check=True)
"""

CLEAN = """
import tempfile

def test_cleans_up(tmp_path):
    with tempfile.TemporaryDirectory():
        pass
    (tmp_path / "f").write_text("x")  # pytest's own basetemp is not the temp dir
"""


def _session(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(HERE / "conftest.py", suite / "conftest.py")
    (suite / "test_it.py").write_text(body)
    (suite / "pytest.ini").write_text("[pytest]\n")  # not the project's addopts
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--basetemp={tmp_path / 'basetemp'}",
            f"--rootdir={suite}",
            "-c",
            str(suite / "pytest.ini"),
            str(suite),
        ],
        capture_output=True,
        text=True,
        cwd=suite,
        timeout=120,
    )


def test_a_session_that_leaves_entries_in_the_temp_dir_fails(tmp_path: Path) -> None:
    result = _session(tmp_path, LEAKY)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "the tests left 2 entries in the temp dir" in result.stdout
    assert "leaked-dir-" in result.stdout and "osiris-leaked" in result.stdout


def test_a_clean_session_passes(tmp_path: Path) -> None:
    result = _session(tmp_path, CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left" not in result.stdout
