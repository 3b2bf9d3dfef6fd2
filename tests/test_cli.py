"""The CLI: every subcommand's --help, sane defaults, exit codes, and the main job's checkpoints and --resume."""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm.cli import build_parser, main
from tinygrad_lstm.experiments import char_lm_loss
from tinygrad_lstm.tasks import ADDING_BASELINE_MSE, load_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _registered_subcommands() -> list[str]:
    """The subcommands the parser knows, read from it, so a newly registered one cannot be missed here."""
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return list(actions[0].choices)


SUBCOMMANDS = _registered_subcommands()
TINY_TRAIN = ["train", "--hidden-size", "8", "--embedding-dim", "4", "--seq-len", "8", "--batch-size", "4",
              "--device", "cpu", "--quiet"]


def test_help_lists_every_subcommand(capsys):
    assert {"train", "sample", "memory", "gates", "graph", "explore", "bench", "info"} <= set(SUBCOMMANDS)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = re.findall(r"^ {4}(\S+) {2,}\S", capsys.readouterr().out, flags=re.M)  # "    name    what it does"
    assert listed == SUBCOMMANDS


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


def test_train_writes_checkpoints_samples_curve_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY_TRAIN, "--steps", "6", "--sample-every", "3", "--checkpoint-every", "3", "--eval-every", "2",
            "--log-every", "2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "bits per character: train" in text and "validation" in text and "steps/s" in text
    assert str(out / "checkpoint.npz") in text and str(out / "best.npz") in text
    state, best = tl.load(out / "checkpoint.npz"), tl.load(out / "best.npz")
    assert int(state["step"]) == 6 and state["config"]["model"].item() == "lstm"
    assert list(state["history"]["val_steps"]) == [2, 4, 6]
    best_bits = state["history"]["val_bits"].min()
    assert int(best["step"]) == state["history"]["val_steps"][state["history"]["val_bits"].argmin()]
    assert f"best validation {best_bits:.3f}" in text
    samples = (out / "samples.txt").read_text()
    assert samples.count("--- step") == 2
    first_char = load_corpus("article").text[0]
    assert all(entry.split("\n", 1)[1].startswith(first_char) for entry in samples.split("--- step")[1:])
    assert (out / "loss.png").stat().st_size > 0
    assert not [f for f in os.listdir(out) if f.startswith(".tmp")]  # atomic writes leave no temporaries


def test_the_validation_split_is_the_end_of_the_corpus_and_never_trained_on():
    corpus = load_corpus("article")
    train, val = corpus.split(0.1)
    assert train.text + val.text == corpus.text and abs(len(val.text) - len(corpus.text) / 10) <= 1
    assert val.vocab == corpus.vocab
    inputs, targets = train.batch(64, 500, np.random.default_rng(0))
    assert inputs.max() < corpus.vocab_size and inputs.shape == (64, 500)
    starts = {train.decode(inputs[:, b]) for b in range(500)}
    assert all(window in train.text for window in starts)
    val_inputs, val_targets = val.windows(16)
    assert val.decode(val_inputs.T.reshape(-1)) == val.text[: val_inputs.size]
    np.testing.assert_array_equal(val_targets[:-1], val_inputs[1:])


def test_resume_continues_exactly_as_an_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = [*TINY_TRAIN, "--sample-every", "0", "--checkpoint-every", "0", "--dropout", "0.2",
              "--lr-decay-every", "3"]
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


def test_a_second_run_into_a_folder_with_a_checkpoint_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    common = [*TINY_TRAIN, "--steps", "3", "--sample-every", "3", "--out", str(tmp_path)]
    assert main(common) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert main([*common, "--overwrite", "--seed", "1"]) == 0
    assert (tmp_path / "samples.txt").read_text().count("--- step") == 1  # started afresh, not appended to


def test_resume_uses_the_checkpoint_lr_unless_lr_is_given(tmp_path, capsys):
    common = [*TINY_TRAIN, "--sample-every", "0", "--lr-decay-every", "0", "--out", str(tmp_path)]
    assert main([*common, "--steps", "2", "--lr", "0.01"]) == 0
    assert main([*common, "--steps", "3", "--resume"]) == 0
    assert float(tl.load(tmp_path / "checkpoint.npz")["optimizer"]["param_groups"]["0"]["lr"]) == 0.01
    capsys.readouterr()
    assert main([*common, "--steps", "4", "--resume", "--lr", "0.1"]) == 0
    assert "--lr 0.1 replaces the checkpoint's learning rate 0.01" in capsys.readouterr().out
    state = tl.load(tmp_path / "checkpoint.npz")
    assert float(state["config"]["lr"]) == 0.1
    assert float(state["optimizer"]["param_groups"]["0"]["lr"]) == 0.1


def test_resume_accepts_the_same_corpus_by_absolute_or_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.txt").write_text("hello world, hello tiny corpus. " * 20, encoding="utf-8")
    common = [*TINY_TRAIN, "--sample-every", "0", "--out", "run"]
    assert main([*common, "--steps", "2", "--corpus", "text.txt"]) == 0
    assert main([*common, "--steps", "3", "--corpus", str(tmp_path / "text.txt"), "--resume"]) == 0


def test_steps_not_beyond_the_checkpoint_is_an_error(tmp_path, capsys):
    common = [*TINY_TRAIN, "--sample-every", "0", "--out", str(tmp_path)]
    assert main([*common, "--steps", "4"]) == 0
    assert main([*common, "--steps", "3", "--resume"]) == 2
    assert "already holds step 4" in capsys.readouterr().err


def test_a_diverging_run_stops_at_the_first_non_finite_loss_keeping_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                                            capsys):
    from tinygrad_lstm.cli import train

    calls = []

    def loss_that_turns_nan(model, inputs, targets):
        calls.append(1)
        loss = char_lm_loss(model, inputs, targets)
        return loss * float("nan") if len(calls) >= 5 else loss

    monkeypatch.setattr(train, "char_lm_loss", loss_that_turns_nan)
    argv = [*TINY_TRAIN, "--steps", "20", "--checkpoint-every", "2", "--log-every", "3", "--sample-every", "2",
            "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "loss became nan at step 5" in err and "step 4" in err and len(err.strip().splitlines()) == 1
    state = tl.load(tmp_path / "checkpoint.npz")
    assert int(state["step"]) == 4
    assert all(np.isfinite(value).all() for value in state["model"].values())


def test_ctrl_c_saves_the_last_step_exits_130_and_resume_continues_exactly(tmp_path):
    common = [*TINY_TRAIN, "--steps", "100000", "--sample-every", "0", "--checkpoint-every", "0"]
    common.remove("--quiet")
    process = subprocess.Popen([sys.executable, "-u", "-m", "tinygrad_lstm", *common, "--out", str(tmp_path / "a")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines = []
    for line in process.stdout:  # wait until the loop runs: the bar's first lines follow this one
        lines.append(line)
        if line.startswith("training: Ctrl-C"):
            break
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    output = "".join(lines) + process.stdout.read()
    assert process.wait(timeout=60) == 130, output
    state = tl.load(tmp_path / "a" / "checkpoint.npz")
    step = int(state["step"])
    assert step > 0 and f"holds step {step}" in output and "--resume" in output
    # the interrupted run, resumed, ends exactly where an uninterrupted one does
    straight = [*TINY_TRAIN, "--sample-every", "0", "--checkpoint-every", "0", "--steps", str(step + 2)]
    assert main([*straight, "--out", str(tmp_path / "a"), "--resume"]) == 0
    assert main([*straight, "--out", str(tmp_path / "b")]) == 0
    a, b = tl.load(tmp_path / "a" / "checkpoint.npz"), tl.load(tmp_path / "b" / "checkpoint.npz")
    for name, value in a["model"].items():
        np.testing.assert_array_equal(value, b["model"][name], err_msg=name)


@pytest.mark.parametrize("argv, message", [
    (["--sample-every", "-1"], "--sample-every must be >= 0"),
    (["--checkpoint-every", "-5"], "--checkpoint-every must be >= 0"),
    (["--lr", "nan"], "--lr must be positive"),
    (["--hidden-size", "99999999"], "GiB"),
    (["--dropout", "1"], "--dropout"),
    (["--task", "recall", "--delay", "1"], "--delay must be at least 2"),
])
def test_bad_training_options_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main([*TINY_TRAIN, "--steps", "2", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unusable_output_folders_and_files_are_one_line_errors(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for out in (afile, afile / "under", "/proc/tinygrad-lstm-test"):
        assert main([*TINY_TRAIN, "--steps", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(out) in err and len(err.strip().splitlines()) == 1
    assert main(["graph", "--format", "dot", "--out", str(afile / "x.dot")]) == 2
    assert "afile" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    tl.save({"weights": np.zeros(3)}, tmp_path / "other" / "checkpoint.npz")
    assert main([*TINY_TRAIN, "--steps", "2", "--out", str(tmp_path / "other"), "--resume"]) == 2
    assert "not a checkpoint of `tinygrad-lstm train`" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "other" / "checkpoint.npz")]) == 2
    assert "not a checkpoint" in capsys.readouterr().err


def test_a_binary_corpus_is_an_error_naming_the_file(tmp_path, capsys):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)))
    assert main([*TINY_TRAIN, "--corpus", str(binary), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "model.bin" in err and "UTF-8" in err


def test_sample_prints_the_prime_then_text_greedy_and_seeded(tmp_path, capsys):
    assert main([*TINY_TRAIN, "--steps", "3", "--sample-every", "0", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    checkpoint = str(tmp_path / "best.npz")
    texts = []
    for extra in (["--seed", "1"], ["--seed", "1"], ["--seed", "2"], ["--temperature", "0"],
                  ["--temperature", "0", "--seed", "5"]):
        assert main(["sample", checkpoint, "--prime", "The ", "--length", "40", "--device", "cpu", *extra]) == 0
        texts.append(capsys.readouterr().out.splitlines(keepends=False)[1:])
        assert "".join(texts[-1]).startswith("The ")
    assert texts[0] == texts[1] != texts[2] and texts[3] == texts[4]
    assert main(["sample", checkpoint, "--prime", "\u2603"]) == 2  # a character the corpus never had


def test_train_adding_at_its_defaults_beats_guessing_the_mean_tenfold(capsys):
    """`train --task adding` with nothing else given: the task's own preset (the real default run, 1000 steps
    at T=50: about 10 s on an idle 2-core machine)."""
    assert main(["train", "--task", "adding", "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    mse = float(out.split("test MSE ")[1].split(",")[0])
    assert mse < 0.1 * ADDING_BASELINE_MSE, out


@pytest.mark.parametrize("task", ["adding", "recall"])
def test_train_memory_tasks(task, capsys):
    argv = ["train", "--task", task, "--steps", "3", "--delay", "6", "--hidden-size", "4", "--batch-size", "4",
            "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    assert ("test MSE" if task == "adding" else "test accuracy") in capsys.readouterr().out


def _table(out: str, header: str) -> dict[int, list[float]]:
    """The rows of the printed table whose header line starts with `header`: first column -> the others."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [header]) + 1
    rows = {}
    for line in lines[start:]:
        if not re.fullmatch(r"\s*\d+(\s+\S+)+", line):
            break
        first, *rest = line.split()
        rows[int(first)] = [float(v) for v in rest]
    return rows


def test_memory_at_its_defaults_the_lstm_remembers_every_delay_and_the_rnn_forgets_the_long_ones(tmp_path, capsys):
    """The verdicts of the README and docs/results.md, from the real default run (eight runs of 1000 steps, two
    at a time: about 17 s on two free cores). --out and --quiet change nothing computed; --device cpu is what
    the default picks without a GPU (and keeps the fake device of the test mode out)."""
    assert main(["memory", "--out", str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    errors, flow = _table(out, "T"), _table(out, "t")
    assert sorted(errors) == [10, 25, 50, 100], out
    rnn, lstm = ({d: row[k] for d, row in errors.items()} for k in (0, 1))
    assert all(mse < 0.1 * ADDING_BASELINE_MSE for mse in lstm.values()), out  # learns every delay
    assert rnn[10] < 0.1 * ADDING_BASELINE_MSE, out  # learns the short one
    assert rnn[50] > 0.8 * ADDING_BASELINE_MSE and rnn[100] > 0.8 * ADDING_BASELINE_MSE, out  # no better than the mean
    rnn_flow = [row[0] for _, row in sorted(flow.items())]
    assert sorted(flow) == [0, 25, 50, 75, 99] and rnn_flow == sorted(rnn_flow), out  # fades step by step
    assert 1e-11 < flow[0][0] < 1e-9 and flow[75][0] < 1e-3 and flow[0][1] > 0.5, out  # 1e-10; the LSTM: in full
    assert (tmp_path / "memory.png").exists() and (tmp_path / "gradient_flow.png").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_memory_prints_table_and_writes_plots(workers, tmp_path, capsys):
    argv = ["memory", "--delays", "4", "6", "--models", "rnn", "gru", "lstm", "--steps", "3", "--hidden-size", "4",
            "--batch-size", "4", "--out", str(tmp_path), "--device", "cpu", "--quiet", "--workers", workers]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "RNN" in out and "GRU" in out and "LSTM" in out and "0.167" in out
    assert (tmp_path / "memory.png").stat().st_size > 0 and (tmp_path / "gradient_flow.png").stat().st_size > 0


def test_gates_at_its_defaults_closes_the_forget_gate_at_the_resets(tmp_path, capsys):
    """The real default run (300 steps, a few seconds): the README's "lower at the resets"."""
    assert main(["gates", "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("mean forget gate at reset symbols"))
    at_reset, elsewhere = (float(part.split()[0].rstrip(";")) for part in line.split(": ")[1:3])
    assert at_reset < elsewhere - 0.1, out
    assert (tmp_path / "forget_gate.png").stat().st_size > 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_graph_writes_dot_source(cell, tmp_path, capsys):
    path = tmp_path / f"{cell}.dot"
    assert main(["graph", "--cell", cell, "--steps", "2", "--format", "dot", "--out", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    source = path.read_text()
    assert ('class="highway"' in source or "class=highway" in source) == (cell != "rnn")


def test_graph_default_renders_an_svg_and_grad_writes_its_own_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["graph"]) == 0
    assert main(["graph", "--grad"]) == 0
    plain, grad = capsys.readouterr().out.strip().splitlines()[-2:]
    assert plain.endswith("lstm-3steps.svg") and grad.endswith("lstm-3steps-grad.svg")
    assert "<svg" in open(plain).read() and "grad " in open(grad).read()


def test_graph_format_follows_the_suffix_of_out(tmp_path, capsys):
    assert main(["graph", "--steps", "1", "--out", str(tmp_path / "cell.png")]) == 0
    assert (tmp_path / "cell.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["graph", "--steps", "1", "--out", str(tmp_path / "cell.dot")]) == 0
    assert (tmp_path / "cell.dot").read_text().startswith("digraph")
    assert main(["graph", "--steps", "1", "--format", "svg", "--out", str(tmp_path / "cell.png")]) == 2


def test_graph_folds_big_unrolls_saying_so_unless_no_fold(tmp_path, capsys):
    assert main(["graph", "--steps", "50", "--format", "dot", "--out", str(tmp_path / "a.dot")]) == 0
    out = capsys.readouterr().out
    assert "folded: the first and last" in out and "of 50 steps" in out and "--no-fold" in out
    assert "step 25" not in (tmp_path / "a.dot").read_text()
    assert main(["graph", "--steps", "50", "--no-fold", "--format", "dot", "--out", str(tmp_path / "b.dot")]) == 0
    assert "folded" not in capsys.readouterr().out and "step 25" in (tmp_path / "b.dot").read_text()
    assert main(["graph", "--fold", "0"]) == 2
    assert "--fold must be positive" in capsys.readouterr().err


def test_graph_help_says_where_folding_starts_and_it_does(tmp_path, capsys):
    """--help: graphs are folded from an LSTM cell of about 40 steps on."""
    with pytest.raises(SystemExit):
        main(["graph", "--help"])
    assert "beyond about 40 steps" in " ".join(capsys.readouterr().out.split())
    for steps, folded in ((40, False), (41, True)):
        assert main(["graph", "--steps", str(steps), "--format", "dot", "--out", str(tmp_path / f"{steps}.dot")]) == 0
        assert ("folded:" in capsys.readouterr().out) is folded


def test_info_reports_versions_and_devices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "graphviz dot" in out and "devices: cpu" in out


def test_bench_runs_both_benchmarks_with_tiny_settings(capsys):
    assert main(["bench", "overhead", "--", "--repeat", "1", "--min-time", "0.001", "--chain-length", "10"]) == 0
    assert main(["bench", "lstm", "--device", "cpu", "--", "--sizes", "1,2,3,4", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "1,2,3,4" in out.replace(" ", "") or "(1, 2, 3, 4)" in out
