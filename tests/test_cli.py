"""The CLI: every subcommand's --help, sane defaults, exit codes, and the main job's checkpoints and --resume."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm.cli import main

SUBCOMMANDS = ["train", "memory", "gates", "graph", "bench", "info"]
TINY_TRAIN = ["train", "--hidden-size", "8", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "4",
              "--device", "cpu", "--quiet"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: tinygrad-lstm " + name in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["frobnicate"], ["train", "--steps", "many"], ["graph", "--cell", "transformer"],
                                  ["train", "--device", "tpu"]])
def test_bad_usage_exits_2(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_bad_values_exit_2_with_a_message(capsys, tmp_path):
    assert main(["train", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "--steps must be positive" in capsys.readouterr().err
    assert main([*TINY_TRAIN, "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path)]) == 2
    assert "missing.txt" in capsys.readouterr().err


def test_cuda_without_a_gpu_exits_2_saying_what_to_install(capsys, tmp_path):
    if tl.cuda.is_available():
        pytest.skip("a GPU is usable here")
    assert main([*TINY_TRAIN[:-3], "--device", "cuda", "--steps", "1", "--out", str(tmp_path)]) == 2
    assert "CuPy" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "tinygrad_lstm", "--help"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0 and "train" in done.stdout


def test_train_writes_checkpoint_samples_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_TRAIN, "--steps", "6", "--sample-every", "3", "--checkpoint-every", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "final loss" in text and "steps/s" in text and str(out / "checkpoint.npz") in text
    state = tl.load(out / "checkpoint.npz")
    assert int(state["step"]) == 6 and state["config"]["model"].item() == "lstm"
    assert (out / "samples.txt").read_text().count("--- step") == 2
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]  # atomic writes leave no temporaries


def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = [*TINY_TRAIN, "--sample-every", "0", "--checkpoint-every", "0"]
    assert main([*common, "--steps", "8", "--out", str(straight)]) == 0
    assert main([*common, "--steps", "5", "--out", str(resumed)]) == 0
    assert main([*common, "--steps", "8", "--out", str(resumed), "--resume"]) == 0
    a, b = tl.load(straight / "checkpoint.npz"), tl.load(resumed / "checkpoint.npz")
    assert int(b["step"]) == 8
    for name, value in a["model"].items():
        np.testing.assert_array_equal(value, b["model"][name], err_msg=name)


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    common = [*TINY_TRAIN, "--sample-every", "0", "--out", str(tmp_path)]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4", "--resume", "--model", "gru"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main([*TINY_TRAIN, "--steps", "2", "--out", str(tmp_path / "empty"), "--resume"]) == 2


@pytest.mark.parametrize("task", ["adding", "recall"])
def test_train_memory_tasks(task, capsys):
    argv = ["train", "--task", task, "--steps", "3", "--delay", "6", "--hidden-size", "4", "--batch-size", "4",
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert ("test MSE" if task == "adding" else "test accuracy") in capsys.readouterr().out


def test_memory_prints_table_and_writes_plots(tmp_path, capsys):
    argv = ["memory", "--delays", "4", "6", "--steps", "3", "--hidden-size", "4", "--batch-size", "4",
            "--out", str(tmp_path), "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "RNN" in out and "GRU" in out and "LSTM" in out and "0.167" in out
    assert (tmp_path / "memory.png").stat().st_size > 0 and (tmp_path / "gradient_flow.png").stat().st_size > 0


def test_gates_prints_summary_and_writes_heatmap(tmp_path, capsys):
    argv = ["gates", "--steps", "3", "--hidden-size", "4", "--length", "20", "--out", str(tmp_path), "--device", "cpu",
            "--quiet"]
    assert main(argv) == 0
    assert "mean forget gate at reset symbols" in capsys.readouterr().out
    assert (tmp_path / "forget_gate.png").stat().st_size > 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_graph_writes_dot_source(cell, tmp_path, capsys):
    path = tmp_path / f"{cell}.dot"
    assert main(["graph", "--cell", cell, "--steps", "2", "--format", "dot", "--out", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    source = path.read_text()
    assert ('class="highway"' in source or "class=highway" in source) == (cell != "rnn")


def test_graph_default_renders_an_svg_with_gradients(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "--grad"]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path.endswith(".svg") and "<svg" in open(path).read()


def test_info_reports_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "graphviz dot" in out and "devices: cpu" in out


def test_bench_runs_both_benchmarks_with_tiny_settings(capsys):
    assert main(["bench", "overhead", "--", "--repeat", "1", "--min-time", "0.001", "--chain-length", "10"]) == 0
    assert main(["bench", "lstm", "--device", "cpu", "--", "--sizes", "1,2,3,4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "1,2,3,4" in out.replace(" ", "") or "(1, 2, 3, 4)" in out
