"""archive.code_counts: the counts a rebuild keeps of its common codes, made while tokenising."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime

import numpy as np

from archive.code_counts import CodeCounter, sample_candidates
from archive.search import Indexable, entry_arrays, index_text, vector_codes
from tests.newstext import article, vocabulary


def test_a_counter_finds_exactly_its_codes_however_they_collide() -> None:
    rng = np.random.default_rng(7)
    codes = np.unique(rng.integers(-(2**31), 2**31, 5_000))
    # codes that share a home slot: only the high bits of the hash pick it
    crowded = np.arange(1, 200, dtype=np.int64) << 40
    counter = CodeCounter(np.concatenate([codes, crowded]))
    wanted = counter.codes
    asked = np.concatenate([wanted, rng.integers(-(2**31), 2**31, 50_000), crowded + 1])
    found = counter.find(asked)
    place = {int(c): i for i, c in enumerate(wanted)}
    assert found.tolist() == [place.get(int(c), -1) for c in asked]
    assert (found[: len(wanted)] >= 0).all() and (found[len(wanted) :] < len(wanted)).all()


def test_a_counter_counts_the_entries_holding_each_code_once_each() -> None:
    words, weights = vocabulary(random.Random(3))
    rng = random.Random(4)
    entries = [
        np.array(vector_codes("", index_text(article(rng, words, weights)))) for _ in range(300)
    ]
    entries.append(np.zeros(0, dtype=np.int64))  # an empty entry holds nothing
    codes = sample_candidates(entries[:100], len(entries), 60, 0.5, 10_000)
    assert 20 < len(codes) < 5_000
    counter = pickle.loads(pickle.dumps(CodeCounter(codes)))  # as a worker gets it
    counts = sum(counter.count(entries[start : start + 7]) for start in range(0, 301, 7))
    held = [set(entry.tolist()) for entry in entries]
    truth = [sum(code in entry for entry in held) for code in codes.tolist()]
    assert list(counts) == truth and max(truth) > 200  # (an entry holds a code many times)
    assert CodeCounter([]).count(entries).tolist() == []


def test_the_sample_keeps_the_codes_often_enough_there_to_be_common() -> None:
    entries = [np.array([1, 2, 2, 3]), np.array([1, 2]), np.array([1, 4]), np.array([1])]
    # of 400 entries, common at 100: a code must be in half of 1/4 of the sample (0.5)
    assert sample_candidates(entries, 400, 100, 0.5, 10).tolist() == [1, 2, 3, 4]
    assert sample_candidates(entries, 400, 400, 0.5, 10).tolist() == [1, 2]  # in 2 or more
    assert sample_candidates(entries, 400, 400, 0.5, 1).tolist() == [1]  # the most frequent
    assert sample_candidates(entries, 40, 400, 0.5, 10).tolist() == []  # none can be common


def test_a_rebuilds_arrays_are_its_entries_codes() -> None:
    """The arrays counted are the codes written: those of the tokens, one at a time."""
    when = datetime(2024, 11, 8, tzinfo=UTC)
    item = Indexable(1, 1, "統戰工作 2024年", "中央统战部召开会议。Hello 世界𠀀", when, 1)
    (codes,) = entry_arrays([item])
    assert codes.tolist() == vector_codes(index_text(item.title), index_text(item.body))
