"""Every example runs, with tiny settings, and shows what it promises."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name: str, *args: str, cwd) -> str:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_autodiff_by_hand_matches_the_engine(tmp_path):
    out = run_example("01_autodiff_by_hand.py", cwd=tmp_path)
    for gate in ("input gate", "forget gate", "candidate", "output gate"):
        assert gate in out
    assert "equals the engine's backward()" in out


def test_render_graphs_writes_the_cell_pictures_and_a_model_of_your_own(tmp_path):
    """The default run, as DOT source (the format only changes what dot is asked to write)."""
    out = run_example("02_render_graphs.py", "--format", "dot", "--out", "g", cwd=tmp_path)
    written = sorted(os.listdir(tmp_path / "g"))
    assert written == ["lstm-1step-grad.dot", "lstm-1step.dot", "lstm-3steps-grad.dot", "lstm-3steps.dot",
                       "model-fused.dot", "model-op-by-op.dot"], out
    fused = (tmp_path / "g" / "model-fused.dot").read_text()
    op_by_op = (tmp_path / "g" / "model-op-by-op.dot").read_text()
    assert "lstm.weight_hh_l0" in fused and "head.weight" in fused and "FusedLSTM" in fused
    assert "forget gate" in op_by_op and "FusedLSTM" not in op_by_op


def test_rnn_vs_lstm_memory_at_its_defaults_the_lstm_remembers_and_the_rnn_forgets(tmp_path):
    """The docstring's promise, with the example's own defaults (T=30, 800 steps; about 10 s)."""
    out = run_example("03_rnn_vs_lstm_memory.py", cwd=tmp_path)
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith(("RNN", "LSTM"))}
    assert lines["RNN"].endswith("forgets") and lines["LSTM"].endswith("remembers"), out
    assert "gradient reaching x_t" in out


def test_forget_gate_at_its_defaults_is_lower_at_the_resets(tmp_path):
    out = run_example("04_forget_gate.py", "--out", "o", cwd=tmp_path)
    line = next(line for line in out.splitlines() if line.startswith("mean forget gate at the resets"))
    at_reset, elsewhere = map(float, re.findall(r": (\d\.\d+)", line))
    assert at_reset < elsewhere - 0.1, line
    assert "RESET" in out and (tmp_path / "o" / "forget_gate.png").exists()


@pytest.mark.parametrize("script", ["05_char_lstm_gpu.py"])
def test_char_lstm_runs_on_the_best_device(script, tmp_path):
    out = run_example(script, "--steps", "3", "--hidden-size", "8", "--seq-len", "8", "--batch-size", "2",
                      cwd=tmp_path)
    assert "step 3: loss" in out


def test_the_pytorch_yardstick_trains_on_the_same_batches(tmp_path, torch):
    out = run_example("07_char_lstm_pytorch.py", "--steps", "4", "--eval-every", "2", "--hidden-size", "8",
                      "--seq-len", "8", "--batch-size", "2", cwd=tmp_path)
    assert "step 4: train" in out and "best validation" in out
