"""Synthetic Chinese news text for benchmarks: words cut from the golden pages' bodies
(tests/fixtures/pages), drawn with Zipf-like frequencies, so that two articles share
about as much of their text as two real ones (bench/dedup.py, bench/distributed.py)."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

PAGES = Path(__file__).resolve().parent / "fixtures" / "pages"


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Words cut from the golden pages' bodies, with Zipf-like cumulative weights."""
    text = "".join(
        json.loads(p.read_text(encoding="utf-8"))["expected"]["body"]
        for p in sorted(PAGES.glob("*.json"))
    )
    text = text.replace("\n", "")
    words = sorted({text[i : i + rng.choice((2, 2, 2, 3, 4))] for i in range(0, len(text) - 4, 2)})
    rng.shuffle(words)
    return words, list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(words))))


def article(rng: random.Random, words: list[str], cum_weights: list[float]) -> str:
    """An article of 1,300-1,800 characters in 5-9 paragraphs (joined by newlines)."""
    paragraphs = []
    for _ in range(rng.randint(5, 9)):
        paragraphs.append(
            "".join(rng.choices(words, cum_weights=cum_weights, k=rng.randint(60, 110))) + "。"
        )
    return "\n".join(paragraphs)[: rng.randint(1300, 1800)]
