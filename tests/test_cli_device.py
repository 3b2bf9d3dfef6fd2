"""Every CLI command that computes, on every test device (the GPU, or the fake device in CI), at tiny settings.

tests/test_cli.py checks what the commands promise on the CPU; these runs check the same commands do not
trip over the device: host/device mixing, implicit conversions, 0-d results, checkpoints of GPU tensors.
"""

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm.cli import main

TINY_CHARS = ["train", "--hidden-size", "8", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "4", "--quiet"]
TINY = ["--steps", "2", "--hidden-size", "4", "--quiet"]


def test_train_chars_checkpoints_and_resumes_on_the_device(device, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main([*TINY_CHARS, "--device", device, "--steps", "2", "--sample-every", "2", "--out", out]) == 0
    text = capsys.readouterr().out
    assert f"device: {device}" in text and f"steps/s on {device}" in text and "bits per character" in text
    assert main([*TINY_CHARS, "--device", device, "--steps", "3", "--out", out, "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    state = tl.load(tmp_path / "run" / "checkpoint.npz")
    assert int(state["step"]) == 3 and all(np.isfinite(np.asarray(v)).all() for v in state["model"].values())


@pytest.mark.parametrize("task", ["adding", "recall"])
def test_train_memory_tasks_on_the_device(task, device, capsys, tmp_path):
    argv = ["train", "--task", task, "--delay", "4", "--batch-size", "2", *TINY, "--device", device, "--out",
            str(tmp_path)]
    assert main(argv) == 0
    assert ("test MSE" if task == "adding" else "test accuracy") in capsys.readouterr().out


def test_memory_on_the_device(device, tmp_path, capsys):
    argv = ["memory", "--delays", "4", "--batch-size", "2", *TINY, "--out", str(tmp_path), "--device", device]
    assert main(argv) == 0
    assert "LSTM" in capsys.readouterr().out and (tmp_path / "memory.png").exists()


def test_gates_on_the_device(device, tmp_path, capsys):
    assert main(["gates", "--length", "12", *TINY, "--out", str(tmp_path), "--device", device]) == 0
    assert "mean forget gate at reset symbols" in capsys.readouterr().out


def test_bench_lstm_on_the_device(device, capsys):
    assert main(["bench", "lstm", "--device", device, "--", "--sizes", "1,2,3,4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "1,2,3,4" in out and "layer/ceiling" in out
