"""`save` / `load`: checkpoints as `.npz` (NumPy) or `.safetensors` (PyTorch and others read it), by suffix.

Both are written atomically and read without pickle. Nested dicts (a model's and an optimizer's state in
one checkpoint) are flattened with "/" in the member names and come back nested (empty ones too); keys
come back as strings, so an int key 0 returns as "0", and a list of dicts (an optimizer's param_groups)
returns as a dict keyed "0", "1", ...

A `.safetensors` file moves weights to PyTorch and back in one line each way:
`torch_lstm.load_state_dict(safetensors.torch.load_file("lstm.safetensors"))` reads what `tl.save` wrote,
and `tl.load` reads what `safetensors.torch.save_file(torch_lstm.state_dict(), ...)` wrote.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import socket
import time
import zipfile
from collections.abc import Callable, Mapping
from typing import BinaryIO

import numpy as np

from .backend import is_backend_array, to_numpy
from .tensor import Tensor

SEPARATOR = "/"
FORMATS = (".npz", ".safetensors")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
_PICKLE_MAGIC = b"\x80"  # the first byte of a pickle of protocol 2 or later (torch.save's legacy format)
_TORCH_SUFFIXES = (".pt", ".pth")
_SAFETENSORS_EXTRA = "pip install 'tinygrad-lstm[safetensors]' (or pip install safetensors)"
_SAFETENSORS_DTYPES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
                       "U32": "uint32", "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16",
                       "F32": "float32", "F64": "float64"}  # the safetensors dtypes NumPy has
_EMPTY_DICTS = "tinygrad_lstm.empty_dicts"  # .safetensors metadata: the names of empty dicts, as a JSON list
_HOST = re.sub(r"\W", "_", socket.gethostname())[:40] or "host"
# temporary files of a save in progress: ".tmp-HOST-PID-TOKEN.npz"; ".tmp-XXXXXXXX.npz" from older versions
_TEMPORARY = re.compile(r"^\.tmp-(?:(?P<host>\w+)-(?P<pid>\d+)-)?[0-9a-z_]{8}\.(?:npz|safetensors)$")
_STALE_AFTER_S = 3600.0  # a temporary file untouched this long belongs to no running save


class CheckpointError(ValueError):
    """A file that `load` cannot read: not a checkpoint, corrupt, truncated, pickled or in PyTorch's format."""


def _torch_recipe(path: str) -> str:
    """Two lines that turn a PyTorch state_dict file into a .safetensors file this package reads."""
    target = os.path.splitext(path)[0] + ".safetensors"
    state = f"torch.load({path!r}, map_location='cpu')"
    return (f"convert it once in Python, with PyTorch and safetensors installed:\n"
            f"    import torch, safetensors.torch\n"
            f"    safetensors.torch.save_file({{k: v.contiguous() for k, v in {state}.items()}}, {target!r})\n"
            f"then tl.load({target!r})")


def _safetensors(action: str):
    """The safetensors package's NumPy half, or an error that names the extra to install."""
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(f"{action} a .safetensors file needs the safetensors package: {_SAFETENSORS_EXTRA}") from None
    return safetensors.numpy


# ---------------------------------------------------------------- save


def _as_numpy(name: str, value) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if is_backend_array(value):
        return to_numpy(value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"save: value of key {name!r} ({type(value).__name__}) does not convert to an array: "
                        f"{exc}") from None
    if array.dtype == object:
        raise TypeError(f"save: value of key {name!r} ({type(value).__name__}) is not an array, number or string")
    return array


def _flatten(state: Mapping, prefix: str, out: dict) -> dict:
    """Nested dicts as one dict of "a/b" -> array; an empty dict is kept as "a" -> None, so it comes back."""
    for key, value in state.items():
        key = str(key)
        if not key or SEPARATOR in key or "\0" in key:
            raise ValueError(f"save: key {prefix + key!r} is empty or contains {SEPARATOR!r}, which marks nesting, "
                             "or a NUL character, which file names cannot hold")
        name = prefix + key
        if isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
            value = dict(enumerate(value))
        if isinstance(value, Mapping) and value:
            _flatten(value, name + SEPARATOR, out)
            continue
        if name in out:
            raise ValueError(f"save: two keys are both written as {name!r}")
        out[name] = None if isinstance(value, Mapping) else _as_numpy(name, value)
    return out


def _write_npz(file: BinaryIO, arrays: dict[str, np.ndarray | None]) -> None:
    """The .npz layout (an uncompressed zip of .npy members), written without pickles; an empty dict is a
    folder entry "name/".

    Written here rather than with `np.savez(**arrays)` so that any key works, "file" and
    "allow_pickle" included.
    """
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            if array is None:
                archive.writestr(zipfile.ZipInfo(name + SEPARATOR), b"")
                continue
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _write_safetensors(file: BinaryIO, arrays: dict[str, np.ndarray | None]) -> None:
    """The safetensors layout: a JSON header of names, dtypes and shapes, then the raw little-endian data;
    the names of empty dicts go into the header's metadata."""
    numpy_names = set(_SAFETENSORS_DTYPES.values())
    empty = [name for name, array in arrays.items() if array is None]
    present = {name: array for name, array in arrays.items() if array is not None}
    if "__metadata__" in present:
        raise ValueError("save: the key '__metadata__' is reserved by the .safetensors format; rename it, or save "
                         "to .npz")
    for name, array in present.items():
        if array.dtype.name not in numpy_names:
            raise TypeError(f"save: key {name!r} holds dtype {array.dtype}, which a .safetensors file cannot; "
                            "save to .npz instead")
    contiguous = {k: v if v.flags.c_contiguous else v.copy(order="C") for k, v in present.items()}
    metadata = {_EMPTY_DICTS: json.dumps(empty)} if empty else None
    file.write(_safetensors("writing").save(contiguous, metadata=metadata))


def _target_path(path: str) -> str:
    """The file `save` writes: `path` checked, with ".npz" appended when it has no suffix."""
    name = os.path.basename(path)
    if not name or name in (".", "..") or name.lower() in FORMATS:
        raise ValueError(f"save: {path!r} names no file; give a name such as 'model.npz' or 'model.safetensors'")
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a folder; give a file name inside it, such as 'model.npz'")
    suffix = os.path.splitext(name)[1].lower()
    if suffix in FORMATS:
        return path
    if suffix in _TORCH_SUFFIXES:
        target = os.path.splitext(path)[0] + ".safetensors"
        raise ValueError(f"save: {path!r} asks for a PyTorch pickle, which tinygrad-lstm does not write; "
                         f"save to {target!r} and read it in PyTorch with safetensors.torch.load_file({target!r})")
    if suffix:
        raise ValueError(f"save: unknown file type {suffix!r} in {path!r}; name it '.npz' (NumPy) or "
                         "'.safetensors' (PyTorch reads it with safetensors.torch.load_file)")
    return path + ".npz"


def _writer_is_gone(match: re.Match) -> bool:
    """True when the temporary file's writer was a process on this machine that no longer runs."""
    if match["pid"] is None or match["host"] != _HOST or os.name == "nt":  # os.kill(pid, 0) would end it there
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it runs, as another user
        return False
    return False


def _remove_stale_temporaries(directory: str) -> list[str]:
    """Delete the temporary files that saves into `directory` killed mid-write left behind; return their paths.

    Only files of `save`'s own naming, and only when their writer is gone (a process of this machine that
    no longer runs) or they were not touched for `_STALE_AFTER_S`: never a file a live save is writing.
    """
    removed = []
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match is None:
                continue
            with contextlib.suppress(OSError):
                if not entry.is_file(follow_symlinks=False):
                    continue
                if _writer_is_gone(match) or now - entry.stat(follow_symlinks=False).st_mtime > _STALE_AFTER_S:
                    os.unlink(entry.path)
                    removed.append(entry.path)
    return removed


def write_atomically(path: str, write: Callable[[BinaryIO], None] | bytes) -> None:
    """Write beside `path`, flush to disk and rename over it: the file appears complete or not at all.

    `write` is the file's bytes, or a function that writes them to the open file. Every file the
    project writes (checkpoints, pictures, pages, results) goes through here.

    The temporary file is created with mode 0o666, so the process umask applies as for any new file
    (the umask itself is never changed: other threads may be creating files at the same moment).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory)
    suffix = os.path.splitext(path)[1]
    tmp = os.path.join(directory, f".tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(write, bytes):
                f.write(write)
            else:
                write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name != "nt":  # make the rename itself durable
        folder = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        except OSError:
            pass  # some file systems cannot sync a folder; the data itself is on disk
        finally:
            os.close(folder)


def save(state: Mapping, path: str | os.PathLike) -> str:
    """Write `state` (name -> Tensor/array/number, nested dicts allowed) to `path` atomically; return the path.

    The suffix picks the format: ".npz" (NumPy's) or ".safetensors" (which PyTorch reads with
    `safetensors.torch.load_file`; needs the `safetensors` extra); ".npz" is appended when there is none.
    The file appears complete or not at all, so a crash mid-save leaves the previous file intact, and
    temporary files that killed saves left in the folder are removed.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"save expects a dict of name -> array, got {type(state).__name__}")
    path = _target_path(os.fsdecode(os.fspath(path)))
    arrays = _flatten(state, "", {})
    if path.lower().endswith(".safetensors"):
        _safetensors("writing")  # fail before anything is written
        write_atomically(path, lambda f: _write_safetensors(f, arrays))
    else:
        write_atomically(path, lambda f: _write_npz(f, arrays))
    return path


# ---------------------------------------------------------------- load


def _read_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> np.ndarray:
    """One .npy member, its header checked against the member's size before any memory is reserved."""
    name = info.filename[: -len(".npy")]
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise CheckpointError(f"load: {path!r}: member {name!r} is in .npy format version {version}, "
                                  "which is not read (only 1.0 and 2.0)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
        if dtype.hasobject:
            raise CheckpointError(f"load: {path!r} holds pickled objects, which are refused (member {name!r}; "
                                  "only plain arrays load)")
        declared, stored = math.prod(shape) * dtype.itemsize, info.file_size - member.tell()
    if declared != stored or min(shape, default=0) < 0:
        raise CheckpointError(f"load: {path!r} is corrupt: member {name!r} declares shape {shape} of {dtype} "
                              f"({declared} bytes) but holds {stored} bytes")
    with archive.open(info) as member:
        try:
            return np.lib.format.read_array(member, allow_pickle=False)
        except MemoryError:
            raise CheckpointError(f"load: {path!r}: member {name!r} ({declared} bytes) does not fit in memory, "
                                  "or the file is corrupt") from None


def _read_npz(path: str) -> dict[str, np.ndarray | None]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if any(info.filename.rsplit("/", 1)[-1] == "data.pkl" for info in members):
                raise CheckpointError(f"load: {path!r} was written by torch.save (a pickle inside a zip), which is "
                                      f"refused because loading a pickle can run code; {_torch_recipe(path)}")
            flat: dict[str, np.ndarray | None] = {}
            for info in members:
                if info.is_dir():  # an empty dict (or a folder entry a zip tool added)
                    name = info.filename.rstrip(SEPARATOR)
                    if flat.get(name) is not None:
                        raise CheckpointError(f"load: {path!r} is corrupt ({name!r} is both an array and a folder)")
                    flat[name] = None
                    continue
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(f"load: {path!r} is corrupt (member {info.filename!r} is not a .npy array)")
                name = info.filename[: -len(".npy")]
                if name in flat:
                    raise CheckpointError(f"load: {path!r} is corrupt (member {name!r} appears twice)")
                flat[name] = _read_npy_member(archive, info, path)
            return flat
    except CheckpointError:
        raise
    except (ValueError, zipfile.BadZipFile, EOFError, OSError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise CheckpointError(f"load: {path!r} is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _read_safetensors(path: str) -> dict[str, np.ndarray | None]:
    """A .safetensors file, its header checked first so that dtypes NumPy lacks get a message naming them."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if size < 8 or length > size - 8:
            raise CheckpointError(f"load: {path!r} is not a .safetensors file, or is truncated "
                                  f"(its header claims {length} bytes of {size})")
        try:
            header = json.loads(f.read(length))
        except ValueError:
            header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"load: {path!r} is corrupt (its .safetensors header is not a JSON object)")
    for name, spec in header.items():
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if name != "__metadata__" and dtype not in _SAFETENSORS_DTYPES:
            hint = " (convert it in PyTorch with .float() before saving)" if isinstance(dtype, str) else ""
            raise CheckpointError(f"load: {path!r}: tensor {name!r} has dtype {dtype}, which NumPy cannot hold{hint}")
    st = _safetensors("reading")
    try:
        flat = st.load_file(path)
    except Exception as exc:  # safetensors raises its own SafetensorError for every defect of the file
        raise CheckpointError(f"load: {path!r} is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    flat = {name: array if array.flags.writeable else array.copy() for name, array in flat.items()}
    metadata = header.get("__metadata__")
    try:
        empty = json.loads(metadata[_EMPTY_DICTS]) if isinstance(metadata, dict) and _EMPTY_DICTS in metadata else []
    except (TypeError, ValueError):
        raise CheckpointError(f"load: {path!r} is corrupt (its {_EMPTY_DICTS!r} metadata is not a JSON list)") from None
    return flat | {name: None for name in empty if isinstance(name, str) and name not in flat}


def _unflatten(flat: dict[str, np.ndarray | None], path: str) -> dict:
    """Member names "a/b" back into nested dicts (None: an empty dict); a name that is both an array and a
    folder is an error."""
    nested: dict = {}
    for name, array in flat.items():
        *parents, leaf = name.split(SEPARATOR)
        node = nested
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                above = SEPARATOR.join(parents[: depth + 1])
                raise CheckpointError(f"load: {path!r} is corrupt: {name!r} nests under {above!r}, which is an array")
        if array is None and isinstance(node.setdefault(leaf, {}), dict):
            continue
        if leaf in node:
            raise CheckpointError(f"load: {path!r} is corrupt: {name!r} is an array, but also holds {name + '/...'!r}")
        node[leaf] = array
    return nested


def _existing(path: str) -> str:
    """`path`, or `path` with ".npz" / ".safetensors" appended when only that exists (as `save` appends)."""
    if not os.path.exists(path):
        for suffix in FORMATS:
            if os.path.exists(path + suffix):
                return path + suffix
        raise FileNotFoundError(f"load: no such file {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"load: {path!r} is a folder, not a checkpoint file")
    return path


def load(path: str | os.PathLike) -> dict:
    """Read a file written by `save` (or by NumPy, or by `safetensors.torch.save_file`): name -> NumPy array.

    Nested dicts come back nested. Pickles are refused, PyTorch's own .pt files get a recipe to convert
    them, and a file that is not a complete checkpoint raises an error naming it.
    """
    path = _existing(os.fsdecode(os.fspath(path)))
    with open(path, "rb") as f:
        head = f.read(4)
    if path.lower().endswith(".safetensors"):
        return _unflatten(_read_safetensors(path), path)
    if head.startswith(_PICKLE_MAGIC) or (path.lower().endswith(_TORCH_SUFFIXES) and head not in _ZIP_MAGIC):
        raise CheckpointError(f"load: {path!r} is a Python pickle (as torch.save writes), which is refused "
                              f"because loading a pickle can run code; {_torch_recipe(path)}")
    if head not in _ZIP_MAGIC:
        raise CheckpointError(f"load: {path!r} is not a .npz checkpoint (it is not a zip archive)")
    return _unflatten(_read_npz(path), path)
