"""`tinygrad-lstm info`: versions, devices, and what to install for whatever is not usable."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import shutil
import subprocess

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm.tensor.backend import CUDA_INSTALL_HINT


def add_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("info", help="versions, devices, and what to install for what is missing",
                          description="Show versions and whether CuPy, a GPU, Graphviz's dot and matplotlib "
                                      "are usable.")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_status() -> tuple[bool, str]:
    """Usable only when an elementwise op, a matmul and a random draw ran on the GPU (tl.cuda.problem())."""
    problem = tl.cuda.problem()
    if problem is not None:
        return False, problem
    import cupy

    names = []
    for i in range(tl.cuda.device_count()):
        name = cupy.cuda.runtime.getDeviceProperties(i)["name"]
        names.append(f"cuda:{i} {name.decode() if isinstance(name, bytes) else name}")
    return True, (f"CuPy {cupy.__version__}; " + ", ".join(names)
                  + "; an elementwise op (NVRTC), a matmul (cuBLAS) and a random draw (cuRAND) ran")


def _cupy_distribution() -> str:
    """Which CuPy wheel is installed (its CUDA major version must match the driver's, see nvidia-smi)."""
    found = [f"{name} {_version(name)}" for name in ("cupy-cuda12x", "cupy-cuda13x", "cupy") if _version(name)]
    return ", ".join(found) or "not installed"


def _dot_status() -> tuple[bool, str]:
    dot = shutil.which("dot")
    if dot is None:
        return False, "Graphviz's dot is not installed: apt-get install graphviz | brew install graphviz | " \
                      "conda install -c conda-forge graphviz"
    version = subprocess.run([dot, "-V"], capture_output=True, text=True).stderr.strip()
    return True, f"{version} ({dot})"


def run(args: argparse.Namespace) -> int:
    cuda_ok, cuda_text = _cuda_status()
    dot_ok, dot_text = _dot_status()
    plot = _version("matplotlib")
    rows = [
        ("tinygrad-lstm", tl.__version__, True),
        ("python", platform.python_version(), True),
        ("numpy", np.__version__, True),
        ("cuda (CuPy + GPU)", cuda_text if cuda_ok else f"not usable: {cuda_text}", cuda_ok),
        ("cupy (installed wheel)", _cupy_distribution(), _cupy_distribution() != "not installed"),
        ("graphviz (Python)", _version("graphviz") or "not installed: pip install graphviz",
         bool(_version("graphviz"))),
        ("graphviz dot", dot_text, dot_ok),
        ("matplotlib (plots)", plot or "not installed (a dependency): reinstall with `pip install .` in a clone, "
         "`pip install tinygrad-lstm`, or `pip install matplotlib`", bool(plot)),
        ("tqdm", _version("tqdm") or "not installed", bool(_version("tqdm"))),
        ("torch (test reference)", _version("torch") or "not installed (optional: pip install torch)", True),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, text, ok in rows:
        print(f"{'ok ' if ok else ' - '} {name.ljust(width)}  {text}")
    print(f"\ndevices: cpu{', cuda' if cuda_ok else ''}; --device auto uses {'cuda' if cuda_ok else 'cpu'}")
    if not cuda_ok:
        print(f"for the GPU: {CUDA_INSTALL_HINT}")
    return 0
