"""`save` / `load`: NumPy `.npz` files, written atomically and read with pickles refused."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np

from .backend import is_backend_array, to_numpy
from .tensor import Tensor

SEPARATOR = "/"


def _flatten(state: Mapping, prefix: str, out: dict) -> dict:
    for key, value in state.items():
        key = str(key)
        if SEPARATOR in key:
            raise ValueError(f"save: key {key!r} contains {SEPARATOR!r}, which marks nesting in the file")
        name = prefix + key
        if isinstance(value, Mapping):
            _flatten(value, name + SEPARATOR, out)
        elif isinstance(value, Tensor):
            out[name] = value.numpy()
        elif is_backend_array(value):
            out[name] = to_numpy(value)
        else:
            array = np.asarray(value)
            if array.dtype == object:
                raise TypeError(f"save: value of key {name!r} ({type(value).__name__}) is not an array, number or string")
            out[name] = array
    return out


def save(state: Mapping, path: str | os.PathLike) -> str:
    """Write `state` (name -> Tensor/array/number, nested dicts allowed) to `path` atomically.

    The file appears complete or not at all: it is written beside the target, flushed to disk and
    renamed over it, so a crash mid-save leaves the previous file intact.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save expects a dict of name -> array, got {type(state).__name__}")
    arrays = _flatten(state, "", {})
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(path: str | os.PathLike) -> dict:
    """Read a file written by `save`: a dict of name -> NumPy array (nested dicts come back nested)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            flat = {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise ValueError(f"load: {path!r} holds pickled objects, which are refused (only plain arrays load)") from None
        raise ValueError(f"load: {path!r} is not a readable .npz checkpoint ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise ValueError(f"load: {path!r} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    nested: dict = {}
    for name, array in flat.items():
        *parents, leaf = name.split(SEPARATOR)
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = array
    return nested
