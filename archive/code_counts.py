"""How many of a rebuild's index entries hold each common code, counted while they are tokenised.

PostgreSQL keeps the count of every code held by COMMON_DOCS entries or more
(`archive.search.refresh_common_codes`); a rebuild used to count them from the GIN index
once it was built: a `count(*)` over a code's postings goes at about 5 million rows a
second a core, and at 1,000,000 articles about 3,200 codes took 71-82 s of a rebuild on
two connections (bench/search.py). The rebuild's tokenising processes have each entry's
codes in hand, so they count them there instead (35-42 us an entry alone, some 35 s in
all at 1M with everything else on the same two cores): a sample of
the articles says which codes may be common (`sample_candidates`), and `CodeCounter`
counts the entries holding each of those in every batch. A code the sample missed is
still counted from the GIN index afterwards, as before; none is counted wrong.

numpy has no lookup of many keys in a set at once (`np.isin` and `np.searchsorted` sort
or bisect: about 160 us an entry against 6,000 codes), so the codes sit in an
open-addressing table (Fibonacci hashing, linear probing) looked up for a whole batch in
a few vectorised passes. Imports nothing of the archive (a worker process unpickles it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EMPTY = np.iinfo(np.int64).min  # a free slot of the table (no code is this)
_GOLDEN = np.uint32(0x9E3779B9)  # 2**32 / golden ratio: Fibonacci hashing (codes are int4s)
# The table and the marks are read and written at random: they are sized to stay in a
# core's cache (512 kB on this machine) beside the process's other work. Marks for a
# batch of 1,000 entries at once (5.5 MB) made the count 35 us an entry alone but about
# 90 us in a rebuild, with PostgreSQL and the other tokenising process on the same cores.
LOAD = 4  # table slots a code: most lookups of a code not in it end at the first slot
MATRIX_CELLS = 1 << 17  # entries x codes marked at once (bytes)


class CodeCounter:
    """Counts, batch by batch, the entries (arrays of codes) holding each of `codes`.
    Pickled as its codes alone; the table is made again where it is unpickled (about a
    millisecond for 6,000 codes)."""

    def __init__(self, codes: Sequence[int] | np.ndarray) -> None:
        self.codes = np.unique(np.asarray(codes, dtype=np.int64))
        self._build()

    def __getstate__(self) -> dict[str, Any]:
        return {"codes": self.codes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.codes = state["codes"]
        self._build()

    def __len__(self) -> int:
        return len(self.codes)

    def _build(self) -> None:
        size = 1 << max(4, (LOAD * max(len(self.codes), 1) - 1).bit_length())
        self._shift = np.uint32(32 - size.bit_length() + 1)
        self._mask = size - 1
        self._keys = np.full(size, EMPTY, dtype=np.int64)
        self._slots = np.full(size, -1, dtype=np.int32)
        # placed in rounds: each round, the codes whose slot is free take it (one a slot);
        # the others move on one slot, past a slot taken, as a lookup will
        pending = np.arange(len(self.codes))
        place = self._home(self.codes)
        while len(pending):
            free = pending[self._keys[place[pending]] == EMPTY]
            _, first = np.unique(place[free], return_index=True)
            taken = free[first]
            self._keys[place[taken]] = self.codes[taken]
            self._slots[place[taken]] = taken
            pending = np.setdiff1d(pending, taken, assume_unique=True)
            place[pending] = (place[pending] + 1) & self._mask

    def _home(self, codes: np.ndarray) -> np.ndarray:
        return ((codes.astype(np.uint32) * _GOLDEN) >> self._shift).astype(np.intp)

    def find(self, codes: np.ndarray) -> np.ndarray:
        """Each code's place in `self.codes`, or -1."""
        codes = np.asarray(codes, dtype=np.int64)
        place = self._home(codes)
        keys = self._keys[place]
        hit = keys == codes
        found = np.where(hit, self._slots[place], -1).astype(np.intp)
        going = np.flatnonzero(~hit & (keys != EMPTY))  # a collision: probe on
        while len(going):
            place[going] = (place[going] + 1) & self._mask
            keys = self._keys[place[going]]
            hit = keys == codes[going]
            found[going[hit]] = self._slots[place[going[hit]]]
            going = going[~hit & (keys != EMPTY)]
        return found

    def count(self, entries: Sequence[np.ndarray]) -> np.ndarray:
        """For each of `self.codes`, how many of `entries` hold it (once however often)."""
        counts = np.zeros(len(self.codes), dtype=np.int64)
        if not len(self.codes):
            return counts
        width = len(self.codes) + 1  # a column more, for the codes not counted
        step = max(1, MATRIX_CELLS // width)
        for start in range(0, len(entries), step):
            part = entries[start : start + step]
            lengths = np.fromiter(map(len, part), dtype=np.intp, count=len(part))
            found = self.find(np.concatenate(part))
            found[found < 0] = len(self.codes)
            # one cell an (entry, code): an entry counts once for a code it holds twice
            found += np.repeat(np.arange(0, len(part) * width, width, dtype=np.intp), lengths)
            marks = np.zeros(len(part) * width, dtype=bool)
            marks[found] = True
            counts += marks.reshape(len(part), width)[:, :-1].sum(axis=0)
        return counts


def sample_candidates(
    entries: Sequence[np.ndarray], total: int, common: int, share: float, most: int
) -> np.ndarray:
    """The codes (sorted) that the sample `entries` of `total` entries holds often enough
    that they may be in `common` entries or more: in at least `share` times the part of
    the sample that `common` is of the total (half, for a binomial sample of thousands,
    leaves a code truly common out only by chance of many standard deviations), the
    `most` most frequent of them."""
    if not entries or total < common:
        return np.zeros(0, dtype=np.int64)
    held = np.concatenate([np.unique(entry) for entry in entries])
    codes, docs = np.unique(held, return_counts=True)
    wanted = docs >= share * common * len(entries) / total
    codes, docs = codes[wanted], docs[wanted]
    return np.sort(codes[np.argsort(-docs, kind="stable")[:most]])
