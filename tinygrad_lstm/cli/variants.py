"""`tinygrad-lstm variants`: which parts of the LSTM matter? Greff et al. 2015 ("LSTM: A Search Space Odyssey")
in miniature: each variant of `nn.variants` and the GRU, several seeds each, on tasks where memory matters (the
adding problem at a long delay, and the character model on the shipped article), then a table and a plot of
the final error, mean +- spread over the seeds, beside the plain LSTM."""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import multiprocessing
import os
import queue as queue_module
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm import nn

from ..experiments import RECURRENT_LAYERS, CharLM, char_lm_loss, train_adding
from ..nn.variants import VARIANTS
from ..plots import MATPLOTLIB_HINT, _pyplot, save_figure
from ..tasks import ADDING_BASELINE_MSE, load_corpus
from ..tensor import write_atomically
from .common import add_device_argument, device_from, output_dir, progress

# The model factory hook: the experiments build layers by name from RECURRENT_LAYERS; the variants join it.
# "vanilla" is nn.LSTM itself (the same math as LSTMVariant(variant="vanilla"), and its fast whole-layer node).
for _name in VARIANTS:
    if _name != "vanilla":
        RECURRENT_LAYERS.setdefault(_name, functools.partial(nn.LSTMVariant, variant=_name))
MODEL_KINDS = {"vanilla": "lstm", "gru": "gru", **{name: name for name in VARIANTS if name != "vanilla"}}
DESCRIPTIONS = {"vanilla": "plain LSTM (no peepholes)", "peephole": "+ peepholes", "cifg": "coupled i = 1 - f",
                "nfg": "no forget gate", "nig": "no input gate", "nog": "no output gate",
                "noaf": "no output activation", "gru": "GRU"}
SLOWEST_FIRST = ("gru", "peephole", "noaf", "nog", "nig", "nfg", "cifg", "vanilla")  # the GRU composes its steps
TASKS = ("adding", "chars")
QUICK = {"seeds": 2, "delay": 6, "adding_steps": 4, "char_steps": 4, "hidden_size": 4, "seq_len": 8, "batch_size": 4}


@dataclass(frozen=True)
class Job:
    """One training run: a variant on a task with a seed."""

    task: str
    variant: str
    seed: int
    steps: int
    hidden_size: int
    batch_size: int
    delay: int
    seq_len: int
    device: str


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("variants", help="LSTM variants (peepholes, coupled gates, no forget gate, ...) and the GRU "
                                        "compared over seeds, as Greff et al. 2015",
                       description="Train each LSTM variant and the GRU with several seeds on the adding problem "
                                   "at a long delay and on the character model of the shipped article; print and "
                                   "plot the final error (mean +- spread over the seeds) beside the plain LSTM, "
                                   "as Greff et al. 2015 (LSTM: A Search Space Odyssey) did at scale.")
    p.add_argument("--variants", nargs="+", choices=list(DESCRIPTIONS), default=list(DESCRIPTIONS))
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--seeds", type=int, default=3, help="training runs per variant and task")
    p.add_argument("--delay", type=int, default=50, help="adding problem: sequence length T")
    p.add_argument("--adding-steps", type=int, default=1200, help="adding problem: training steps per run")
    p.add_argument("--char-steps", type=int, default=1000, help="character model: training steps per run")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=32, help="character model: characters per window")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: every core)")
    p.add_argument("--quick", action="store_true", help="tiny settings that only prove the pipeline runs (tests)")
    p.add_argument("--out", default=os.path.join("runs", "variants"), help="folder for the plot and results.json")
    p.add_argument("--quiet", action="store_true")
    add_device_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    for name in ("seeds", "delay", "adding_steps", "char_steps", "hidden_size", "seq_len", "batch_size", "jobs"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.delay < 2:
        raise ValueError(f"--delay must be at least 2, got {args.delay}")
    device = device_from(args)
    jobs = [Job(task, variant, seed, args.adding_steps if task == "adding" else args.char_steps, args.hidden_size,
                args.batch_size, args.delay, args.seq_len, device)
            for variant in sorted(args.variants, key=SLOWEST_FIRST.index) for task in args.tasks
            for seed in range(args.seeds)]  # the longest first, so the cores finish together
    workers = 1 if device != "cpu" else min(args.jobs, len(jobs))  # one GPU: one process drives it
    errors = run_jobs(jobs, workers, args.quiet)
    tables = {task: {v: errors[task, v] for v in args.variants} for task in args.tasks}
    for task in args.tasks:
        print("\n" + format_table(task, tables[task], args))
    out = output_dir(args.out)
    _write_json(os.path.join(out, "results.json"), {"settings": _settings(args), "errors": tables})
    try:
        print(f"\nplot: {plot_variants(tables, os.path.join(out, 'variants.png'))}")
    except ImportError:
        print(f"\n{MATPLOTLIB_HINT}")
    return 0


# ---------------------------------------------------------------- running the jobs on every core


def run_jobs(jobs: list[Job], workers: int, quiet: bool = False) -> dict[tuple[str, str], list[float]]:
    """Every job's final error, grouped by (task, variant) in seed order; one bar counts every training step."""
    results: dict[tuple[str, str], dict[int, float]] = {}
    with progress(sum(job.steps for job in jobs), f"{len(jobs)} runs on {workers} process(es)", quiet) as bar:
        if workers == 1:
            with _one_blas_thread():
                for job in jobs:
                    bar.set_description(f"{job.variant} {job.task} seed {job.seed}")
                    results.setdefault((job.task, job.variant), {})[job.seed] = train_job(job, bar.update)
        else:
            with multiprocessing.Manager() as manager:
                ticks = manager.Queue()
                with multiprocessing.get_context("spawn").Pool(workers, _init_worker, (ticks,)) as pool:
                    pending = pool.map_async(_train_in_worker, jobs, chunksize=1)  # one at a time: they vary
                    while not pending.ready():
                        _drain(ticks, bar, timeout=0.2)
                    for job, error in zip(jobs, pending.get(), strict=True):
                        results.setdefault((job.task, job.variant), {})[job.seed] = error
                    _drain(ticks, bar, timeout=0)
    return {key: [by_seed[s] for s in sorted(by_seed)] for key, by_seed in results.items()}


_TICKS: Any = None  # a worker's queue to the progress bar


def _init_worker(ticks) -> None:
    """One BLAS thread per process (the processes are the parallelism), and the queue to report steps on."""
    global _TICKS
    _TICKS = ticks
    _one_blas_thread()


def _one_blas_thread():
    """Limit BLAS to one thread (the matrices are small; threads only compete); undone when used as a context."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS may oversubscribe the cores, which is only slower
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _train_in_worker(job: Job) -> float:
    return train_job(job, lambda: _TICKS.put(1))


def _drain(ticks, bar, timeout: float) -> None:
    try:
        while True:
            bar.update(ticks.get(timeout=timeout))
    except queue_module.Empty:
        pass


def train_job(job: Job, tick) -> float:
    """Train one run, `tick()` after every step; the final error (adding: test MSE; chars: held-out bits/char)."""
    kind = MODEL_KINDS[job.variant]
    if job.task == "adding":
        result = train_adding(kind, job.delay, job.steps, job.hidden_size, job.batch_size, device=job.device,
                              seed=job.seed, on_step=lambda i, loss: tick())
        return result.mse
    return train_chars(kind, job, tick)


def train_chars(kind: str, job: Job, tick) -> float:
    """The character model (experiments.CharLM) on the first 90% of the article; error on windows of the last 10%."""
    corpus = load_corpus("article")
    split = int(0.9 * len(corpus.encoded))
    train, held_out = copy.copy(corpus), copy.copy(corpus)  # one vocabulary, two parts of the text
    train.encoded, held_out.encoded = corpus.encoded[:split], corpus.encoded[split:]
    tl.manual_seed(job.seed)
    rng = np.random.default_rng(job.seed)
    model = CharLM(corpus.vocab_size, job.hidden_size, kind=kind, device=job.device)
    optimizer = nn.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(job.steps):
        loss = char_lm_loss(model, *train.batch(job.seq_len, job.batch_size, rng))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tick()
    with tl.no_grad():
        inputs, targets = held_out.batch(job.seq_len, 64, np.random.default_rng(10_000))
        return char_lm_loss(model, inputs, targets).item() / np.log(2)  # nats -> bits per character


# ---------------------------------------------------------------- the table, the verdict and the plot

ERROR_NAMES = {"adding": "test MSE", "chars": "held-out bits/char"}
TITLES = {"adding": "adding problem", "chars": "character model"}


def summary(values: list[float]) -> tuple[float, float]:
    """Mean and spread (sample standard deviation; 0 for one seed)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def verdict(values: list[float], reference: list[float]) -> str:
    """'worse' / 'better' when the means differ by more than twice the standard error of the difference."""
    (mean, spread), (ref_mean, ref_spread) = summary(values), summary(reference)
    margin = 2 * np.sqrt(spread**2 / len(values) + ref_spread**2 / len(reference))
    if mean - ref_mean > margin:
        return "worse"
    return "better" if ref_mean - mean > margin else "same"


def format_table(task: str, errors: dict[str, list[float]], args: argparse.Namespace) -> str:
    what = (f"adding problem, T={args.delay}, {args.adding_steps} steps (guessing the mean: "
            f"{ADDING_BASELINE_MSE:.3f})" if task == "adding" else f"character model, {args.char_steps} steps")
    lines = [f"{what}: final {ERROR_NAMES[task]}, mean +- spread over {args.seeds} seed(s), hidden {args.hidden_size}",
             f"{'variant':<10}{'':<27}{'mean':>9}{'spread':>10}   vs vanilla   seeds"]
    reference = errors.get("vanilla")
    for variant, values in errors.items():
        mean, spread = summary(values)
        versus = "" if reference is None or variant == "vanilla" else verdict(values, reference)
        seeds = " ".join(f"{v:.4f}" for v in values)
        lines.append(f"{variant:<10}{DESCRIPTIONS[variant]:<27}{mean:9.4f}{spread:10.4f}   {versus:<10}   {seeds}")
    return "\n".join(lines)


def plot_variants(tables: dict[str, dict[str, list[float]]], path: str) -> str:
    """One panel per task: each variant's mean +- spread (bar and whisker) and every seed (dots)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4), squeeze=False)
    for ax, (task, errors) in zip(axes[0], tables.items(), strict=True):
        names = list(errors)
        means, spreads = zip(*(summary(errors[n]) for n in names), strict=True)
        colours = ["#1f77b4" if n == "vanilla" else "#2ca02c" if n == "gru" else "#9ecae1" for n in names]
        ax.bar(range(len(names)), means, yerr=spreads, color=colours, capsize=4)
        for k, name in enumerate(names):
            ax.plot([k] * len(errors[name]), errors[name], "k.", ms=4)
        if task == "adding":
            ax.axhline(ADDING_BASELINE_MSE, ls="--", color="grey", label=f"guess the mean ({ADDING_BASELINE_MSE:.3f})")
            ax.legend(loc="upper left")
        else:  # bits per character differ in the first decimal: start the axis near the lowest run
            ax.set_ylim(bottom=0.9 * min(min(values) for values in errors.values()))
        ax.set_xticks(range(len(names)), names, rotation=30)
        ax.set(ylabel=f"final {ERROR_NAMES[task]}", title=TITLES[task])
    fig.suptitle("LSTM variants: mean +- spread over seeds (dots: single runs)")
    fig.tight_layout()
    return save_figure(fig, path)


def _settings(args: argparse.Namespace) -> dict:
    keys = ("seeds", "delay", "adding_steps", "char_steps", "hidden_size", "seq_len", "batch_size", "quick")
    return {key: getattr(args, key) for key in keys}


def _write_json(path: str, data: dict) -> None:
    """Atomically: a crash leaves the old file, never half of a new one."""
    write_atomically(path, json.dumps(data, indent=1).encode("utf-8"))

