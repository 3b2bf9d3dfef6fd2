"""The package type-checks: mypy reports no errors (skipped where mypy is not installed).

One cold mypy run (its cache in a temporary folder, so nothing stale is trusted): about 15 s of CPU.
"""

import os
import subprocess
import sys

import pytest

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_finds_no_errors(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e .[dev])")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--cache-dir", str(tmp_path / "mypy_cache"),
         "--no-error-summary", "--hide-error-context", "tinygrad_lstm"],
        cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"
