"""Batches of sequences of unequal lengths, as `torch.nn.utils.rnn`: PackedSequence and its packing helpers.

A packed batch keeps only the real steps: the sequences sorted by length (longest first), then, step
by step, the rows of the sequences still running. `batch_sizes[t]` says how many run at step t, so
`data` (sum(lengths), *features) is step 0's rows, then step 1's, ... A recurrent layer given one
runs each sequence exactly to its own end, and its h_n is each sequence's state at its true last step.

Every function here moves rows with one gather (`tensor[index]`), so gradients flow through packing
and unpacking back to the padded input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ...tensor import Tensor, cat, full


class PackedSequence(NamedTuple):
    """data (sum(lengths), *features); batch_sizes (steps,) int64 on the CPU; sorted_indices[j] is the
    original batch index of the j-th longest sequence (unsorted_indices inverts it); both None when the
    batch came sorted (enforce_sorted=True)."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shapes (L_i, *features) into (max L, batch, *features) (batch first if batch_first)."""
    if isinstance(sequences, Tensor) or not isinstance(sequences, Sequence) or not sequences:
        raise TypeError("pad_sequence: expected a non-empty list of Tensors")
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'right' or 'left', got {padding_side!r}")
    first = sequences[0]
    for k, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {k} is a {type(s).__name__}, not a Tensor")
        if s.ndim == 0 or s.shape[1:] != first.shape[1:] or s.device != first.device or s.dtype != first.dtype:
            raise ValueError(f"pad_sequence: sequence {k} has shape {s.shape}, dtype {s.dtype} on {s.device!r}; "
                             f"every sequence must be (L, *{first.shape[1:]}), dtype {first.dtype} on "
                             f"{first.device!r} like sequence 0")
    lengths = np.array([s.shape[0] for s in sequences])
    steps, batch = int(lengths.max()), len(sequences)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    t = np.arange(steps)[:, None]
    offset = steps - lengths if padding_side == "left" else np.zeros_like(lengths)
    inside = (t >= offset) & (t < offset + lengths)
    index = np.where(inside, starts + t - offset, lengths.sum())  # the row past the data is the padding
    padded = _with_padding_row(cat(list(sequences)), padding_value)[index.reshape(-1)]
    padded = padded.reshape(steps, batch, *first.shape[1:])
    return padded.transpose(0, 1) if batch_first else padded


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,  # noqa: A002 - PyTorch's name
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (steps, batch, *features) (batch first if batch_first) with each sequence's length.

    lengths: ints (a list, an array or a 1-D Tensor), each in [1, steps]. enforce_sorted=True needs them
    in decreasing order; False sorts the batch here and records the order in the PackedSequence.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence: input must be a Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: input must have a time and a batch axis, got shape {input.shape}")
    steps, batch = input.shape[1::-1] if batch_first else input.shape[:2]
    lengths = _check_lengths(lengths, batch, steps, enforce_sorted)
    order = np.arange(batch) if enforce_sorted else np.argsort(-lengths, kind="stable")
    batch_sizes = (lengths[:, None] > np.arange(int(lengths.max(initial=0)))).sum(axis=0)
    t = np.concatenate([np.full(n, step) for step, n in enumerate(batch_sizes)] or [np.zeros(0, dtype=int)])
    b = np.concatenate([order[:n] for n in batch_sizes] or [np.zeros(0, dtype=int)])
    rows = b * steps + t if batch_first else t * batch + b
    data = input.reshape(steps * batch, *input.shape[2:])[rows]
    if enforce_sorted:
        return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)))
    return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)), *_indices(order, input.device))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo `pack_padded_sequence`: (padded, lengths), the batch in its original order, padding_value past each end."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got {type(sequence).__name__}")
    batch_sizes = packed_batch_sizes(sequence)
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"pad_packed_sequence: total_length={total_length} is shorter than the longest "
                             f"sequence ({steps} steps)")
        steps = total_length
    batch = batch_sizes[0] if len(batch_sizes) else 0
    sorted_lengths = (np.asarray(batch_sizes)[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    unsorted = (np.arange(batch) if sequence.unsorted_indices is None
                else sequence.unsorted_indices.numpy().astype(np.int64))
    starts = np.concatenate([[0], np.cumsum(batch_sizes)])
    t = np.arange(steps)[:, None]
    j = unsorted[None, :]  # each original batch entry's position among the sorted sequences
    running = t < sorted_lengths[j]
    index = np.where(running, starts[np.minimum(t, len(batch_sizes))] + j, starts[-1])
    data = sequence.data
    padded = _with_padding_row(data, padding_value)[index.reshape(-1)].reshape(steps, batch, *data.shape[1:])
    return (padded.transpose(0, 1) if batch_first else padded), Tensor(sorted_lengths[unsorted].astype(np.int64))


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors (L_i, *features) directly (`pad_sequence`, then `pack_padded_sequence`)."""
    padded = pad_sequence(sequences)
    return pack_padded_sequence(padded, [s.shape[0] for s in sequences], enforce_sorted=enforce_sorted)


# ---------------------------------------------------------------- for the recurrent layers


def packed_batch_sizes(sequence: PackedSequence) -> list[int]:
    """The batch sizes as Python ints, checked: positive, non-increasing, adding up to the rows of data."""
    sizes = [int(n) for n in np.asarray(sequence.batch_sizes.numpy() if isinstance(sequence.batch_sizes, Tensor)
                                        else sequence.batch_sizes).reshape(-1)]
    if (any(n <= 0 for n in sizes) or any(a < b for a, b in zip(sizes, sizes[1:], strict=False))
            or not isinstance(sequence.data, Tensor) or sum(sizes) != sequence.data.shape[0]):
        rows = sequence.data.shape[0] if isinstance(sequence.data, Tensor) else "?"
        raise ValueError(f"PackedSequence: batch_sizes {sizes} must be positive, non-increasing and add up to "
                         f"the {rows} rows of data")
    return sizes


def reversed_in_time(batch_sizes: Sequence[int]) -> np.ndarray:
    """The permutation of packed rows that reverses every sequence within its own length (its own inverse).

    Running a layer forward over the permuted rows is running it backward over each sequence: the
    reverse direction of a bidirectional layer. The batch sizes are unchanged.
    """
    sizes = np.asarray(batch_sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    lengths = (sizes[None, :] > np.arange(sizes[0])[:, None]).sum(axis=1)
    t = np.repeat(np.arange(len(sizes)), sizes)
    j = np.concatenate([np.arange(n) for n in sizes])
    return starts[lengths[j] - 1 - t] + j


def _with_padding_row(data: Tensor, padding_value: float) -> Tensor:
    """data with one more row of padding_value at the end: what a gather reads at padded positions."""
    return cat([data, full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)])


def _indices(order: np.ndarray, device: str) -> tuple[Tensor, Tensor]:
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return Tensor(order.astype(np.int64), device=device), Tensor(inverse.astype(np.int64), device=device)


def _check_lengths(lengths, batch: int, steps: int, enforce_sorted: bool) -> np.ndarray:
    values = np.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
    if values.ndim != 1 or values.dtype.kind not in "iu" and not (values.size == 0 and values.dtype.kind == "f"):
        raise TypeError(f"pack_padded_sequence: lengths must be a 1-D list of ints, got {lengths!r}")
    values = values.astype(np.int64)
    if len(values) != batch:
        raise ValueError(f"pack_padded_sequence: got {len(values)} lengths for a batch of {batch}")
    if (values <= 0).any():
        raise ValueError(f"pack_padded_sequence: every length must be at least 1, got {values.tolist()}")
    if (values > steps).any():
        raise ValueError(f"pack_padded_sequence: lengths {values.tolist()} are longer than the sequence "
                         f"({steps} steps)")
    if enforce_sorted and (np.diff(values) > 0).any():
        raise ValueError(f"pack_padded_sequence: lengths {values.tolist()} are not in decreasing order; sort the "
                         "batch or pass enforce_sorted=False")
    return values
