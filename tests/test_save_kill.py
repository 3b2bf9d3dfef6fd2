"""Saves killed mid-write (SIGKILL, no cleanup code runs): the previous file stays whole, and the temporary
files the killed writers leave are removed by the next save, so they never pile up."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinygrad_lstm as tl

WRITER = """
import sys
import numpy as np
import tinygrad_lstm as tl

path = sys.argv[1]
weights = np.empty(500_000)  # 4 MB: a save takes long enough to be killed in the middle
print("ready", flush=True)
version = 1
while True:
    weights.fill(version)
    tl.save({"weights": weights, "version": version}, path)
    version += 1
"""


def _temporaries(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".tmp-")]


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_saves_killed_at_random_points_keep_the_file_whole_and_leave_no_temporaries(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    path = str(tmp_path / f"ck{suffix}")
    tl.save({"weights": np.zeros(500_000), "version": 0}, path)
    root = os.path.dirname(os.path.dirname(tl.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    delays = random.Random(0)  # fixed, so a failure reproduces
    left_behind = 0
    for _ in range(4):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, env=env)
        assert writer.stdout.readline() == b"ready\n"
        time.sleep(delays.uniform(0.02, 0.12))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        checkpoint = tl.load(path)  # whole: loads, and every weight is from one and the same save
        assert np.all(checkpoint["weights"] == int(checkpoint["version"]))
        temporaries = _temporaries(tmp_path)
        assert len(temporaries) <= 1, temporaries  # each new save removed the one the previous kill left
        left_behind += len(temporaries)
    assert left_behind, "no kill landed in the middle of a save, so this test proved nothing"
    tl.save({"weights": np.ones(3), "version": -1}, path)
    assert _temporaries(tmp_path) == []
