"""Repeated scopes ("step 1", "step 2", ...): found generically, kept in order, and folded when long.

At some depth of the scope path, parts of the form "<word> <int>" with one word and many numbers are
the repeats (time steps). The (depth, word) that names the most distinct scopes wins, so in
"layer 0/step 5" the steps repeat (layers x steps scopes), not the layers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

INDEXED_PART = re.compile(r"^(.*\S)\s+(\d+)$")


@dataclass(frozen=True)
class RepeatedScope:
    """Scope parts `word <n>` at `depth`, for each n in `numbers`."""

    depth: int
    word: str
    numbers: tuple[int, ...]

    def number_of(self, scope: tuple[str, ...]) -> int | None:
        """Which repeat `scope` lies in, or None when it lies outside them."""
        if len(scope) <= self.depth:
            return None
        match = INDEXED_PART.match(scope[self.depth])
        return int(match.group(2)) if match and match.group(1) == self.word else None

    def label(self, count: int) -> str:
        return f"... {count} {self.word}{'' if count == 1 else 's'} ..."


def find_repeated_scope(scopes: Iterable[tuple[str, ...]]) -> RepeatedScope | None:
    """The repeating level of the scope paths, or None when no part looks like "<word> <int>"."""
    named: dict[tuple[int, str], dict[tuple[str, ...], int]] = {}  # (depth, word) -> {prefix: its number}
    for scope in scopes:
        for depth, part in enumerate(scope):
            match = INDEXED_PART.match(part)
            if match:
                named.setdefault((depth, match.group(1)), {})[scope[: depth + 1]] = int(match.group(2))
    if not named:
        return None
    (depth, word), prefixes = max(named.items(), key=lambda item: (len(item[1]), item[0][0]))
    numbers = sorted(set(prefixes.values()))
    return RepeatedScope(depth, word, tuple(numbers))


def hidden_numbers(repeated: RepeatedScope, keep: int) -> frozenset[int]:
    """The repeats beyond the first and last `keep`: the ones a fold elides."""
    return frozenset(repeated.numbers[keep:-keep]) if len(repeated.numbers) > 2 * keep else frozenset()
