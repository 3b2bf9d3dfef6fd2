"""`tinygrad-lstm variants`: the pipeline at its --quick setting (every variant, both tasks, two processes),
the verdict against the plain LSTM, and bad arguments."""

import json

import pytest

from tinygrad_lstm.cli import main
from tinygrad_lstm.cli.variants import DESCRIPTIONS, MODEL_KINDS, verdict
from tinygrad_lstm.experiments import RECURRENT_LAYERS
from tinygrad_lstm.tasks import ADDING_BASELINE_MSE


def test_quick_run_prints_both_tables_and_writes_plot_and_results(tmp_path, capsys):
    assert main(["variants", "--quick", "--jobs", "2", "--out", str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "adding problem, T=6" in out and "character model, 4 steps" in out
    for variant in DESCRIPTIONS:
        assert out.count(f"\n{variant:<10}{DESCRIPTIONS[variant]}") == 2  # a row in each table
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["settings"]["seeds"] == 2
    for task in ("adding", "chars"):
        assert set(results["errors"][task]) == set(DESCRIPTIONS)
        assert all(len(v) == 2 and all(e > 0 for e in v) for v in results["errors"][task].values())
    assert (tmp_path / "variants.png").stat().st_size > 0


def test_one_process_gives_the_same_errors_as_two(tmp_path, capsys):
    """The workers run the same seeded jobs as the main process would: the numbers do not depend on --jobs."""
    runs = []
    for jobs in ("1", "2"):
        out = tmp_path / jobs
        argv = ["variants", "--quick", "--jobs", jobs, "--variants", "cifg", "gru", "--tasks", "adding",
                "--out", str(out), "--quiet", "--device", "cpu"]
        assert main(argv) == 0
        runs.append(json.loads((out / "results.json").read_text())["errors"])
    assert runs[0] == runs[1]


def test_every_variant_trains_its_own_layer():
    for variant, kind in MODEL_KINDS.items():
        layer = RECURRENT_LAYERS[kind](2, 4)
        assert getattr(layer, "variant", "vanilla" if kind == "lstm" else "gru") == variant


def test_verdict_needs_a_difference_beyond_the_spread():
    reference = [1.0, 1.1, 0.9]
    assert verdict([2.0, 2.1, 1.9], reference) == "worse"
    assert verdict([0.5, 0.6, 0.4], reference) == "better"
    assert verdict([1.05, 1.2, 0.8], reference) == "same"
    assert verdict([1.3, 0.7, 1.6], reference) == "same"  # a higher mean, but inside the spread


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--delay", "1"], ["--jobs", "0"]])
def test_bad_arguments_exit_2(argv, capsys):
    assert main(["variants", *argv, "--quiet", "--device", "cpu"]) == 2
    assert "tinygrad-lstm variants: error:" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["variants", "--help"])
    assert exit_info.value.code == 0
    assert "Greff" in capsys.readouterr().out


def test_without_an_input_gate_the_adding_problem_fails(tmp_path):
    """The README's verdict at a fast setting (T = 20, 400 steps, hidden 16, one seed; docs/results.md): the plain
    LSTM solves the adding problem, the LSTM without an input gate stays at the guess-the-mean error."""
    argv = ["variants", "--variants", "vanilla", "nig", "--tasks", "adding", "--delay", "20", "--adding-steps", "400",
            "--hidden-size", "16", "--seeds", "1", "--jobs", "1", "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    errors = json.loads((tmp_path / "results.json").read_text())["errors"]["adding"]
    assert errors["vanilla"][0] < 0.1 * ADDING_BASELINE_MSE
    assert errors["nig"][0] > 0.5 * ADDING_BASELINE_MSE
