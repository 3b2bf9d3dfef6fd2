"""Every example runs, with tiny settings, and shows what it promises."""

import os
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


def test_render_graphs_writes_four_pictures(tmp_path):
    out = run_example("02_render_graphs.py", "--steps", "2", "--format", "dot", "--out", "g", cwd=tmp_path)
    written = sorted(os.listdir(tmp_path / "g"))
    assert written == ["lstm-1step-grad.dot", "lstm-1step.dot", "lstm-2steps-grad.dot", "lstm-2steps.dot"], out


def test_rnn_vs_lstm_memory_prints_errors_and_gradient_flow(tmp_path):
    out = run_example("03_rnn_vs_lstm_memory.py", "--delay", "8", "--steps", "5", cwd=tmp_path)
    assert "RNN" in out and "LSTM" in out and "gradient reaching x_t" in out


def test_forget_gate_prints_trace_and_heatmap(tmp_path):
    out = run_example("04_forget_gate.py", "--steps", "3", "--length", "12", "--out", "o", cwd=tmp_path)
    assert "RESET" in out and (tmp_path / "o" / "forget_gate.png").exists()


@pytest.mark.parametrize("script", ["05_char_lstm_gpu.py"])
def test_char_lstm_runs_on_the_best_device(script, tmp_path):
    out = run_example(script, "--steps", "3", "--hidden-size", "8", "--seq-len", "8", "--batch-size", "2",
                      cwd=tmp_path)
    assert "step 3: loss" in out
