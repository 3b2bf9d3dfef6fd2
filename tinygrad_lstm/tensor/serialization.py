"""`save` / `load`: NumPy `.npz` files, written atomically and read with pickles refused.

Nested dicts (a model's and an optimizer's state in one checkpoint) are flattened with "/" in the
member names and come back nested; keys come back as strings, so an int key 0 returns as "0", and
a list of dicts (an optimizer's param_groups) returns as a dict keyed "0", "1", ...
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np

from .backend import is_backend_array, to_numpy
from .tensor import Tensor

SEPARATOR = "/"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


def _flatten(state: Mapping, prefix: str, out: dict) -> dict:
    for key, value in state.items():
        key = str(key)
        if not key or SEPARATOR in key:
            raise ValueError(f"save: key {prefix + key!r} is empty or contains {SEPARATOR!r}, which marks nesting")
        name = prefix + key
        if isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            value = dict(enumerate(value))
        if isinstance(value, Mapping):
            _flatten(value, name + SEPARATOR, out)
            continue
        if name in out:
            raise ValueError(f"save: two keys are both written as {name!r}")
        if isinstance(value, Tensor):
            out[name] = value.detach().numpy()
        elif is_backend_array(value):
            out[name] = to_numpy(value)
        else:
            array = np.asarray(value)
            if array.dtype == object:
                raise TypeError(f"save: value of key {name!r} ({type(value).__name__}) is not an array, "
                                "number or string")
            out[name] = array
    return out


def _write_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """The .npz layout (an uncompressed zip of .npy members), written without pickles.

    Written here rather than with `np.savez(**arrays)` so that any key works, "file" and
    "allow_pickle" included.
    """
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save(state: Mapping, path: str | os.PathLike) -> str:
    """Write `state` (name -> Tensor/array/number, nested dicts allowed) to `path` atomically; return the path.

    The file appears complete or not at all: it is written beside the target, flushed to disk and
    renamed over it, so a crash mid-save leaves the previous file intact. ".npz" is appended when missing.
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
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(path: str | os.PathLike) -> dict:
    """Read a file written by `save`: a dict of name -> NumPy array (nested dicts come back nested).

    Pickled objects are refused, and a file that is not a complete .npz raises an error naming it.
    """
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path += ".npz"
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file {path!r}")
    with open(path, "rb") as f:
        if f.read(4) not in _ZIP_MAGIC:
            raise ValueError(f"load: {path!r} is not a .npz checkpoint (it is not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            flat = {name: archive[name] for name in archive.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"load: {path!r} holds pickled objects, which are refused "
                             "(only plain arrays load)") from None
        raise ValueError(f"load: {path!r} is corrupt ({exc})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"load: {path!r} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    for name, value in flat.items():
        if not isinstance(value, np.ndarray):  # NumPy hands back raw bytes for a member that is not .npy
            raise ValueError(f"load: {path!r} is corrupt (member {name!r} is not a NumPy array)")
    nested: dict = {}
    for name, array in flat.items():
        *parents, leaf = name.split(SEPARATOR)
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = array
    return nested
