"""`tinygrad-lstm memory`: the article's claim as numbers. A plain RNN and an LSTM (and a GRU on request) on the
adding problem for several delays, then the gradient that reaches each input step: fading for the RNN, carried
by the LSTM. The (model, delay) runs are independent, so they run side by side, one per CPU core."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import queue
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..experiments import LOG_EVERY, input_gradient_norms, train_adding
from ..plots import plot_gradient_flow, plot_memory
from ..tasks import ADDING_BASELINE_MSE
from .common import add_device_argument, check_numbers, device_from, output_dir, progress

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("memory", help="RNN vs LSTM (and GRU) on the adding problem, and their gradient flow",
                       description="Train a plain RNN and an LSTM (add gru to --models for a GRU) on the adding "
                                   "problem (Hochreiter & Schmidhuber 1997) for each delay T; print test errors "
                                   "against the 0.167 baseline of guessing the mean, and how much gradient reaches "
                                   "each input step. The runs go side by side, one per core (--workers).")
    p.add_argument("--delays", type=int, nargs="+", default=[10, 25, 50, 100], help="sequence lengths T")
    p.add_argument("--models", nargs="+", choices=["rnn", "gru", "lstm"], default=["rnn", "lstm"],
                   help="default: rnn lstm (the GRU is drawn from primitive ops, and slow: about 4x the others)")
    p.add_argument("--steps", type=int, default=1000, help="training steps per model and delay (default 1000)")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=_cores(),
                   help=f"runs side by side, each in its own process (default: the number of cores, {_cores()})")
    p.add_argument("--out", default=os.path.join("runs", "memory"), help="folder for the plots")
    p.add_argument("--quiet", action="store_true")
    add_device_argument(p)
    return p


@dataclass
class _Job:
    kind: str
    delay: int
    steps: int
    hidden_size: int
    batch_size: int
    lr: float
    device: str
    seed: int
    gradient_flow: bool  # measure the gradient reaching each input (for the longest delay)


@dataclass
class _Outcome:
    mse: float
    norms: np.ndarray | None


_progress_queue = None  # in a worker process: where it reports its steps


def _init_worker(progress_queue) -> None:
    global _progress_queue
    _progress_queue = progress_queue


def _run_job(index: int, job: _Job, report=None) -> _Outcome:
    """Train one model on one delay; report progress every LOG_EVERY steps (to the queue in a worker)."""
    def on_step(i: int, loss: float | None) -> None:
        if loss is not None or i + 1 == job.steps:
            done = (i + 1) % LOG_EVERY or LOG_EVERY
            (report or _progress_queue.put)((index, done, loss))

    result = train_adding(job.kind, job.delay, job.steps, job.hidden_size, job.batch_size, job.lr, job.device,
                          job.seed, on_step)
    norms = input_gradient_norms(result.model, job.delay) if job.gradient_flow else None
    return _Outcome(result.mse, norms)


@contextlib.contextmanager
def _one_blas_thread_each():
    """Worker processes start with one BLAS thread each: N processes on N cores, not N x N threads."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update({name: "1" for name in BLAS_THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_all(jobs: list[_Job], workers: int, quiet: bool) -> list[_Outcome]:
    """Every job, a progress bar each; in `workers` processes side by side, or here when workers is 1."""
    bars = [progress(job.steps, f"{job.kind} T={job.delay}".ljust(10), quiet, position=i) for i, job in enumerate(jobs)]

    def advance(message) -> None:
        index, done, loss = message
        bars[index].update(done)
        if loss is not None:
            bars[index].set_postfix(loss=f"{loss:.4f}")

    try:
        if workers == 1:
            return [_run_job(i, job, advance) for i, job in enumerate(jobs)]
        context = multiprocessing.get_context("spawn")
        messages = context.Queue()
        with _one_blas_thread_each(), ProcessPoolExecutor(workers, context, _init_worker, (messages,)) as pool:
            # the longest delays first, so no core is left alone with the slowest run at the end
            order = sorted(range(len(jobs)), key=lambda i: -jobs[i].delay)
            futures = {i: pool.submit(_run_job, i, jobs[i]) for i in order}
            while not all(f.done() for f in futures.values()):
                with contextlib.suppress(queue.Empty):
                    advance(messages.get(timeout=0.2))
            while not messages.empty():
                advance(messages.get())
            return [futures[i].result() for i in range(len(jobs))]
    finally:
        for bar in reversed(bars):
            bar.close()


def run(args: argparse.Namespace) -> int:
    check_numbers(args, positive=("steps", "hidden_size", "batch_size", "lr", "workers"))
    if min(args.delays) < 2:
        raise ValueError(f"--delays must be >= 2, got {min(args.delays)}")
    device = device_from(args)
    workers = 1 if device != "cpu" else min(args.workers, len(args.delays) * len(args.models))
    longest = max(args.delays)
    keys = [(kind, delay) for delay in args.delays for kind in args.models]
    jobs = [_Job(kind, delay, args.steps, args.hidden_size, args.batch_size, args.lr, device, args.seed,
                 delay == longest) for kind, delay in keys]
    if not args.quiet:
        print(f"{len(jobs)} runs of {args.steps} steps, {workers} at a time")
    results = dict(zip(keys, _run_all(jobs, workers, args.quiet), strict=True))
    print(format_error_table(results, args.models, args.delays))

    norms = {kind: results[kind, longest].norms for kind in args.models}
    print(f"\nGradient reaching input x_t from the loss at the last step (T={longest}), relative to the last input:")
    print(format_gradient_table(norms, longest))

    out = output_dir(args.out)
    try:
        errors = {kind: [results[kind, d].mse for d in args.delays] for kind in args.models}
        paths = [plot_memory(errors, args.delays, ADDING_BASELINE_MSE, os.path.join(out, "memory.png")),
                 plot_gradient_flow(norms, os.path.join(out, "gradient_flow.png"))]
        print("\nplots: " + ", ".join(paths))
    except ImportError as exc:
        print(f"\n{exc}")
    return 0


def format_error_table(results: dict, models: list[str], delays: list[int]) -> str:
    header = f"test MSE (baseline of guessing the mean: {ADDING_BASELINE_MSE:.3f})\n"
    header += "T".rjust(6) + "".join(kind.upper().rjust(10) for kind in models)
    rows = [str(d).rjust(6) + "".join(f"{results[k, d].mse:10.4f}" for k in models) for d in delays]
    return "\n".join([header, *rows])


def format_gradient_table(norms: dict[str, np.ndarray], steps: int) -> str:
    picks = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    lines = ["t".rjust(6) + "".join(kind.upper().rjust(12) for kind in norms)]
    for t in picks:
        lines.append(str(t).rjust(6) + "".join(f"{values[t] / values[-1]:12.2e}" for values in norms.values()))
    return "\n".join(lines)
