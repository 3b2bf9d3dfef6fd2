"""The README's Python code runs as written: each ```python block as a script in an empty folder, and what its
comments say it prints is what it prints."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKS = re.findall(r"^```python\n(.*?)^```", open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(),
                    flags=re.S | re.M)


def _run(code: str, folder) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_readme_has_python_blocks():
    assert BLOCKS, "no ```python block found in README.md"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    pytest.importorskip("safetensors", reason="the tour saves a .safetensors file (pip install .[safetensors])")
    result = _run(BLOCKS[index], tmp_path)
    assert result.returncode == 0, f"README block {index} failed:\n{result.stdout}{result.stderr}"
    for line in BLOCKS[index].splitlines():  # `print(...)  # shown` comments name what is printed
        if m := re.match(r"\s*print\(.*\)\s*#\s*(.+)$", line):
            shown = m.group(1).strip()
            assert shown in result.stdout, f"README: {line.strip()!r} should print {shown!r}; got:\n{result.stdout}"
