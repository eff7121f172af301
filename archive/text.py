"""Text normalisation shared by deduplication and search: one script, one width, no pinyin.

Chinese pages come in simplified and traditional script, with full-width Latin letters
and digits, and sometimes with pinyin left in the text after a character (`統(tǒng)`, see
../shared/seeds). Comparing or searching them means converting all of that to one form.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

# A pinyin reading in brackets right after a character: `統(tǒng)`, `戰（zhàn）`.
PINYIN_LEAK = re.compile(r"[(（][a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ]+[)）]")


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # the official wheels: ~16 M characters/s (DESIGN.md)

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional script to simplified (OpenCC t2s); simplified text comes back unchanged."""
    return str(_t2s().convert(text))


@lru_cache(maxsize=1)
def _s2t() -> Any:
    import opencc

    return opencc.OpenCC("s2t")


def to_traditional(text: str) -> str:
    """Simplified script to traditional (OpenCC s2t), to match fields stored either way."""
    return str(_s2t().convert(text))


# What NFKC makes of full-width ASCII and the ideographic space, the only characters in
# most Chinese text that it changes (，：？！（）): translating them first is 2.3x quicker
# than normalising the text (a search's snippets fold whole bodies).
_FULL_WIDTH = str.maketrans({c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20})


def nfkc(text: str) -> str:
    """NFKC, skipped when the text is normal already (most Chinese text, and far cheaper)
    or once its full-width forms are translated."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    text = text.translate(_FULL_WIDTH)
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def normalize(text: str) -> str:
    """Pinyin leaks out, NFKC, simplified script, lower case: the form search compares."""
    return to_simplified(nfkc(PINYIN_LEAK.sub("", text))).lower()
