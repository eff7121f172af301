"""Full-text search of the archive: Chinese words of any length, either script, SQLite or PostgreSQL.

Index text. Title and body are normalised (`archive.text.normalize`: pinyin leaks out,
NFKC, simplified script, lower case) and cut into tokens: a run of Han characters
c1 c2 ... cn gives its overlapping bigrams c1c2, c2c3 ... and then cn alone, which marks
where the run ends; Latin words and numbers are tokens as they are. A query string goes
through the same steps, so 統戰 finds 统战, and matches exactly the articles that contain
it (DESIGN.md: trigram tokenizers find nothing for two characters, unicode61 makes a
whole Han run one token, PostgreSQL's parser does not segment Chinese at all):

- one character X, at the end of a query term: any token that starts with X (a bigram
  XY, or X ending a run) -- a prefix query;
- two or more: their bigrams as a phrase (consecutive positions), so 统战工作 is not
  found in a text that only has 统战 and 工作 apart;
- a run followed by more of the term (`统战2024`) must end there: its last character
  follows as its own token.

Backends. SQLite: an FTS5 table without content (`search_fts`: the text is in
article_versions already, so the index stores only tokens and positions), whose rowid is
the article's place in newest-first order, so that "newest first, top 20" reads 20
entries of the index and stops. PostgreSQL: the same tokens as int4 codes in text
order (`search_docs.vector`, an int4[] under GIN: `token_code`), a term found with `@>`
(all its codes present, from the index) and, for a phrase or a prefix, checked in the
array by `ufa_hits` (migration 0020: the codes one after another). Both sit beside `search_docs`
(article, indexed version, order key), kept in step by `index_articles`, which the
crawler calls in the transaction that stores a new or changed article.

Query language: words (AND), "exact phrase", OR between two terms, -exclude, field
filters site: source: editor: author: (-site: excludes), since: until: (dates),
status:live|gone|moved (-status: excludes) and changed:yes|no (edited: more than one
version); relevance
(BM25 on SQLite, weighted occurrences on PostgreSQL, title weighted above body) or newest first;
a republication cluster collapses to its best hit with a count, unless all copies are
asked for. A malformed query raises QueryError, a one-line message.
"""

from __future__ import annotations

import html
import math
import random
import re
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache, partial
from time import monotonic
from typing import Any, Literal, NamedTuple, TypeVar, cast

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    column,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    text,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from archive.code_counts import CodeCounter, sample_candidates
from archive.db import array_literal as codes_literal  # the text of an int4[]
from archive.db import copy_binary
from archive.errors import UfarchiveError
from archive.models import (
    SEARCH_GIN_HALVES,
    Article,
    ArticleVersion,
    Cluster,
    SearchCodeCount,
    SearchCommonCode,
    SearchDoc,
    Site,
)
from archive.text import PINYIN_LEAK, nfkc, normalize, to_simplified, to_traditional

HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# A Han run, or a run of other letters and digits (Latin, Cyrillic, kana ...).
_RUNS = re.compile(rf"([{HAN}]+)|([^\W_{HAN}]+)")
TITLE_WEIGHT = 4.0  # a match in the title counts four times one in the body
# FTS5 buffers this many bytes of new postings in a transaction before it writes a
# segment (its default is 1 MB): a rebuild writes far fewer segments to merge later.
FTS_HASHSIZE = 64 << 20
FETCH_SLACK = 20  # rows read past twice the page, for copies collapsed away
# PostgreSQL's newest-first probe asks for the page and this many more, and goes on below
# the last it found (asking twice as many each time) while copies collapsed away leave the
# page short: asking twice the page at once walked twice the documents for every page.
PROBE_SLACK = 5
PROBE_RESUMES = 4
RANK_WINDOW = 20_000  # relevance ranks at most this many matches, the newest (SQLite)
# PostgreSQL's relevance reads each ranked match's codes out of TOAST: it ranks the newest
# 2,000 (a common word took 2.2 s ranked whole at 200k, with the tsvectors of before).
PG_RANK_WINDOW = 2_000
# On PostgreSQL, for a query expected in many documents: the newest documents (that pass
# the filters) are tested a step at a time, down the doc_id index, until the matches
# wanted are found (a page newest first, or relevance's window), instead of reading every
# match out of the GIN index to sort them (434-510 ms for a common word at 200k). A step
# is PROBE_MARGIN times what the matches found so far (at first, the expected ones) say
# is needed; past PG_PROBE_MAX documents (PG_RANK_PROBE_MAX for the window) the GIN plan
# answers instead.
PG_PROBE_MAX = 5_000  # documents probed for a page newest first (about 9 us each)
PG_RANK_PROBE_MAX = 20_000  # documents probed for relevance's window
PROBE_MARGIN = 1.5
GIN_MATCH_SHARE = 10  # a probed document costs about this many one-token GIN matches
WALK_SHARE = 5  # ... and about this many documents walked past that fail a filter
KEY_SHARE = 50  # ... and about this many keys walked (index only; `_ranged` steps)
READ_MARGIN = 1.1  # candidates read a match wanted (most hold the phrase: `_ranged` steps)
# ... and this many more: reading too few costs a second step, the codes' GIN bitmap made
# again (11 ms for 小组会议 at 1M, whose 28 candidates read held 22 of 25 matches), where a
# candidate read costs 20-40 us
READ_SLACK = 10
POSTING_SHARE = 200  # ... and this many of a code's postings made into a bitmap (GIN)
CHECK_SHARE = 0.01  # a phrase expected in fewer: its GIN candidates counted first
RANGED_WIDTH = 3  # a ranged first step walks this many times the keys expected to do
DOUBT_RATIO = 4  # ... and one found this many times rarer in its first step: then
KEYS_WANTED = 60  # matches wanted, at least, in the cap of `_candidate_keys`
WHOLE_SHARE = 20  # a candidate's key taken (GIN, then its row) against a document read
SNIPPET_CHARS = 120
BEIJING = timezone(timedelta(hours=8))
FIELDS = ("site", "source", "editor", "author", "since", "until", "status", "changed")
STATUSES = ("live", "gone", "moved")
Sort = Literal["relevance", "newest"]
Order = Literal["relevance", "newest", "oldest"] | None  # oldest: internal (see _collapse)

ARTICLES = cast(Table, Article.__table__)
VERSIONS = cast(Table, ArticleVersion.__table__)
DOCS = cast(Table, SearchDoc.__table__)
SITES = cast(Table, Site.__table__)
CLUSTERS = cast(Table, Cluster.__table__)
COMMON = cast(Table, SearchCommonCode.__table__)
COUNTS = cast(Table, SearchCodeCount.__table__)


class QueryError(UfarchiveError):
    """A search query that cannot be read; the message says where and why."""

    def __init__(self, query: str, problem: str) -> None:
        super().__init__(f"search query {query!r}: {problem}")


# --- tokens --------------------------------------------------------------------------------


def tokens(normalized: str) -> list[str]:
    """Index tokens of normalised text: Han bigrams plus each run's last character; words."""
    out: list[str] = []
    for han, word in _RUNS.findall(normalized):
        if han:
            out.extend([han[i : i + 2] for i in range(len(han) - 1)])
            out.append(han[-1])
        else:
            out.append(word)
    return out


# Token codes (PostgreSQL's index): a BMP Han character's index among the 28,096 Han code
# points of the BMP ranges below; a bigram XY is 1 + X * 28,096 + Y (exact, and all the
# bigrams that start with X are one range: a prefix), a run's closing character X is
# CLOSING + X; any other token (a word, a number, Han beyond the BMP) is a negative
# hash. 0 separates the title's codes from the body's (no phrase across them).
HAN_BMP = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
HAN_COUNT = sum(last - first + 1 for first, last in HAN_BMP)  # 28,096
CLOSING = 1 + HAN_COUNT * HAN_COUNT  # 789,385,217; + 28,096 still fits an int4
_HAN_INDEX = {
    chr(point): n
    for n, point in enumerate(p for first, last in HAN_BMP for p in range(first, last + 1))
}


def token_code(token: str) -> int:
    """A token's int4 code (above). Hashed tokens are words and numbers, where a false
    match needs two of them to share 31 bits of a CRC (zlib's, stable across versions
    and machines, unlike Python's hash)."""
    index = _HAN_INDEX
    if len(token) == 2:
        first, second = index.get(token[0]), index.get(token[1])
        if first is not None and second is not None:
            return 1 + first * HAN_COUNT + second
    elif len(token) == 1 and (only := index.get(token)) is not None:
        return CLOSING + only
    return -1 - (zlib.crc32(token.encode()) & 0x7FFFFFFF)


def prefix_codes(char: str) -> tuple[int, int, int] | None:
    """(lowest, highest, closing) code of the tokens a one-character prefix X finds: the
    bigrams XY and X closing a run; None for a character outside the BMP's Han (its
    tokens are hashed, so only the character alone, as a closing token, is found)."""
    index = _HAN_INDEX.get(char)
    if index is None:
        return None
    low = 1 + index * HAN_COUNT
    return low, low + HAN_COUNT - 1, CLOSING + index


def vector_codes(title: str, body: str) -> list[int]:
    """An entry's codes: the title's tokens, 0, the body's (token strings, `index_text`)."""
    code = token_code
    return [*map(code, title.split()), 0, *map(code, body.split())]


# _HAN_INDEX as an array over the BMP (-1: not Han), for form_codes
_HAN_ARRAY = np.full(0x10000, -1, dtype=np.int64)
_HAN_ARRAY[[ord(char) for char in _HAN_INDEX]] = list(_HAN_INDEX.values())
_WORDS = re.compile(rf"[^\W_{HAN}]+")


def form_codes(form: str) -> np.ndarray:
    """`token_code` of each of `tokens(form)`, in order, computed over the whole text at
    once (numpy) instead of a token string at a time: the codes of an article took 0.6 ms
    that way, most of what PostgreSQL's index build spent outside the server."""
    coded = _coded(form)
    if coded is None:  # Han beyond the BMP: its tokens are hashed
        return np.array([token_code(token) for token in tokens(form)], dtype=np.int64)
    codes, emits = coded
    return cast(np.ndarray, codes[emits])


def _coded(form: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A code at each character of `form` and where a token's is (the first character of a
    word, every Han character), or None if the text is empty or holds Han beyond the BMP."""
    points = np.frombuffer(form.encode("utf-32-le"), dtype=np.uint32)
    if not len(points) or points.max() > 0xFFFF:
        return None
    han = _HAN_ARRAY[points]
    is_han = han >= 0
    then_han = np.zeros_like(is_han)
    then_han[:-1] = is_han[1:]
    following = np.zeros_like(han)
    following[:-1] = han[1:]
    # a Han character starts the bigram with the next one, or closes its run
    codes = np.where(then_han, 1 + han * HAN_COUNT + following, CLOSING + han)
    emits = is_han
    for word in _WORDS.finditer(form):  # numbers and Latin words: few in Chinese text
        codes[word.start()] = -1 - (zlib.crc32(word.group().encode()) & 0x7FFFFFFF)
        emits[word.start()] = True
    return codes, emits


def entry_codes(title_form: str, body_form: str) -> bytes:
    """`codes_binary` of `vector_codes(...)` of an article's title and body (`search_form`)."""
    return codes_binary(_entry_array(title_form, body_form))


def _entry_array(title_form: str, body_form: str) -> np.ndarray:
    """The title's codes, 0, the body's: computed in one pass over both, a space between
    (no token crosses it), which spares a title numpy's cost a call (about 20 us)."""
    coded = _coded(f"{title_form} {body_form}")
    if coded is None:
        return np.concatenate((form_codes(title_form), [0], form_codes(body_form)))
    codes, emits = coded
    return np.insert(codes[emits], np.count_nonzero(emits[: len(title_form)]), 0)


_INT4_OID = 23


def codes_binary(codes: np.ndarray) -> bytes:
    """An int4[] in PostgreSQL's binary form (what array_recv reads, and COPY ... FORMAT
    BINARY sends): one dimension, no nulls, int4 elements, lower bound 1, then each code
    as its length (4) and value, big-endian. Made with numpy in a tokenising process: the
    server then reads 2,000 entries in 0.14 s, where parsing their text (`codes_literal`)
    took 0.69 s (bench/search.py)."""
    if not len(codes):
        return struct.pack("!iii", 0, 0, _INT4_OID)
    pairs = np.empty((len(codes), 2), dtype=">i4")
    pairs[:, 0] = 4
    pairs[:, 1] = codes
    return struct.pack("!iiiii", 1, 0, _INT4_OID, len(codes), 1) + pairs.tobytes()


class CountedCopies(NamedTuple):
    """A rebuild's batch of entries (PostgreSQL): each article's codes as `codes_binary`,
    for its COPY, and how many of them hold each of a `CodeCounter`'s codes."""

    copies: list[bytes]
    counts: np.ndarray | None


def entry_arrays(items: Sequence[Indexable]) -> list[np.ndarray]:
    """Each article's codes (`vector_codes`) as an array."""
    return [_entry_array(search_form(item.title or ""), search_form(item.body)) for item in items]


def counted_copies(items: Sequence[Indexable], counter: CodeCounter | None) -> CountedCopies:
    """`CountedCopies` of a batch; picklable, for a worker process."""
    arrays = entry_arrays(items)
    counts = counter.count(arrays) if counter is not None else None
    return CountedCopies([codes_binary(codes) for codes in arrays], counts)


_NOT_WORD = re.compile(r"[\W_]+")


def search_form(text: str) -> str:
    """`archive.text.normalize` for tokens: punctuation becomes a space first, which
    leaves most text NFKC-normal already and halves the time (bench/search.py)."""
    return to_simplified(nfkc(_spaced(PINYIN_LEAK.sub("", text)))).lower()


def _spaced(text: str) -> str:
    """`_NOT_WORD.sub(" ", text)`, computed over the code points with numpy: a run of
    characters that are not letters or digits becomes one space (the regular expression
    took 51 us for an article of 1,500 characters, a third of `search_form`)."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if not len(points) or points.max() > 0xFFFF:
        return _NOT_WORD.sub(" ", text)
    word = _word_points()[points]
    starts = ~word  # the first character of each run of the others
    starts[1:] &= word[:-1]
    kept = np.where(word, points, np.uint32(32))[word | starts]
    return bytes(kept.tobytes()).decode("utf-32-le", "surrogatepass")


@lru_cache(maxsize=1)
def _word_points() -> np.ndarray:
    """Whether `_NOT_WORD` leaves each code point of the BMP as it is (Python's own rule
    for a letter or digit, `_` excepted), asked of the expression itself."""
    return np.array([not _NOT_WORD.match(chr(point)) for point in range(0x10000)], dtype=bool)


def index_text(text: str | None) -> str:
    """The token string FTS5 indexes (its `ascii` tokenizer splits it on the spaces)."""
    return " ".join(tokens(search_form(text or "")))


@dataclass(frozen=True)
class Term:
    """One thing to find: tokens at consecutive positions, the last maybe a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False
    # its codes, the rarest first, as `@>` is to test them in a row (`_rarest_first`)
    checked: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, raw: str) -> Term | None:
        runs = _RUNS.findall(search_form(raw))
        out: list[str] = []
        prefix = False
        for k, (han, word) in enumerate(runs):
            last = k == len(runs) - 1
            if word:
                out.append(word)
            elif len(han) == 1:
                out.append(han)
                prefix = last  # X at the end: XY or X ending a run
            else:
                out.extend(han[i : i + 2] for i in range(len(han) - 1))
                if not last:
                    out.append(han[-1])  # the run ends here in the text too
        return cls(tuple(out), prefix) if out else None

    @property
    def positional(self) -> bool:
        """Checked in order in an entry's codes (PostgreSQL): several tokens, or a prefix."""
        return len(self.tokens) > 1 or self.prefix

    def fts5(self) -> str:
        return '"' + " ".join(self.tokens) + '"' + (" *" if self.prefix else "")

    def codes(self) -> tuple[list[int], tuple[int, int, int] | None]:
        """(the codes of its tokens in order, the codes its closing prefix may take): for
        PostgreSQL's index (`token_code`)."""
        if self.prefix and (prefix := prefix_codes(self.tokens[-1])) is not None:
            return [token_code(t) for t in self.tokens[:-1]], prefix
        return [token_code(t) for t in self.tokens], None


# --- the query language ----------------------------------------------------------------------


@dataclass
class Query:
    """A parsed query: all of `clauses` (each any of its terms), none of `excluded`."""

    text: str
    clauses: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)
    raw_terms: list[str] = field(default_factory=list)  # what to mark in snippets
    sites: list[str] = field(default_factory=list)
    not_sites: list[str] = field(default_factory=list)
    fields: list[tuple[str, str, bool]] = field(default_factory=list)  # (column, value, negated)
    since: datetime | None = None
    until: datetime | None = None
    statuses: list[str] = field(default_factory=list)
    not_statuses: list[str] = field(default_factory=list)
    changed: bool | None = None  # more than one version (an edit was found)

    @property
    def has_text(self) -> bool:
        return bool(self.clauses)


_WORD = re.compile(r'[^\s"]+')
_FIELD = re.compile(r"([A-Za-z_]+):(?=\S)")


def parse_query(query: str) -> Query:
    """Read the query language (see the module docstring); raise QueryError when malformed."""
    parsed = Query(query)
    pos, pending_or = 0, False
    while True:
        while pos < len(query) and query[pos].isspace():
            pos += 1
        if pos >= len(query):
            break
        negated = query[pos] == "-" and pos + 1 < len(query) and not query[pos + 1].isspace()
        pos += negated
        name = None
        if match := _FIELD.match(query, pos):
            name = match.group(1).lower()
            if name not in FIELDS:
                raise QueryError(query, f"unknown field {match.group(1)}: (use {', '.join(f + ':' for f in FIELDS)})")  # fmt: skip
            pos = match.end()
        if query[pos] == '"':
            end = query.find('"', pos + 1)
            if end < 0:
                raise QueryError(query, f"the quote at {pos + 1} is not closed")
            value, pos = query[pos + 1 : end], end + 1
        else:
            match = _WORD.match(query, pos)
            assert match is not None  # pos is at neither a space nor a quote
            value, pos = match.group(), match.end()
        if name is None and value == "OR" and not negated:
            if pending_or or not parsed.clauses:
                raise QueryError(query, "OR needs a term on each side")
            pending_or = True
            continue
        if name is not None:
            if pending_or:
                raise QueryError(query, f"OR cannot join the filter {name}:")
            _add_filter(parsed, name, value, negated)
            continue
        term = Term.parse(value)
        if term is None:
            if pending_or:
                raise QueryError(query, f"OR needs a term on each side, not {value!r}")
            continue  # punctuation only: nothing to find
        if negated:
            if pending_or:
                raise QueryError(query, "OR cannot join an exclusion")
            parsed.excluded.append(term)
        elif pending_or:
            parsed.clauses[-1].append(term)
            parsed.raw_terms.append(value)
        else:
            parsed.clauses.append([term])
            parsed.raw_terms.append(value)
        pending_or = False
    if pending_or:
        raise QueryError(query, "OR needs a term on each side")
    return parsed


def _add_filter(parsed: Query, name: str, value: str, negated: bool) -> None:
    if name in ("since", "until"):
        if negated:
            raise QueryError(parsed.text, f"-{name}: means nothing; use since: or until:")
        day = parse_day(value, parsed.text, name)
        if name == "since":
            parsed.since = day
        else:  # until:2024-06 takes in all of June (the CLI's --until is "before")
            parsed.until = _next_period(day, value.count("-"))
    elif name == "site":
        (parsed.not_sites if negated else parsed.sites).append(value)
    elif name == "status":
        if value.lower() not in STATUSES:
            raise QueryError(parsed.text, f"status:{value} is not one of {', '.join(STATUSES)}")
        (parsed.not_statuses if negated else parsed.statuses).append(value.lower())
    elif name == "changed":
        answer = {"yes": True, "no": False, "true": True, "false": False}.get(value.lower())
        if answer is None:
            raise QueryError(
                parsed.text, f"changed:{value} means nothing; use changed:yes or changed:no"
            )
        parsed.changed = answer != negated
    else:
        parsed.fields.append((name, value, negated))


#: The years a since:/until: date may name: until: takes the whole period it names, so its
#: end must still be a date, and years past int range overflowed (bench/fuzz.py found it).
DATE_YEARS = (1000, 9998)


def parse_day(value: str, query: str, name: str) -> datetime:
    """YYYY-MM-DD, YYYY-MM or YYYY, in Beijing time like the pages."""
    try:
        parts = [int(p) for p in value.split("-")]
        day = date(*(parts + [1] * (3 - len(parts)))) if 1 <= len(parts) <= 3 else None
    except (ValueError, OverflowError):
        day = None
    if day is None or not DATE_YEARS[0] <= day.year <= DATE_YEARS[1]:
        raise QueryError(
            query,
            f"{name}:{value} is not a date (YYYY-MM-DD, YYYY-MM or YYYY, "
            f"years {DATE_YEARS[0]} to {DATE_YEARS[1]})",
        )
    return datetime.combine(day, time(), BEIJING)


def _next_period(day: datetime, dashes: int) -> datetime:
    if dashes == 2:
        return day + timedelta(days=1)
    if dashes == 1:
        return day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
    return day.replace(year=day.year + 1)


# --- keeping the index in step -----------------------------------------------------------------


def order_key(when: datetime) -> int:
    """An article's place in newest-first order: its time in seconds, taken as the first
    free one at or after it. Dense keys keep FTS5's doclists small (their rowid deltas
    are varints: seconds took 2 bytes where seconds shifted past an article id took 5-6,
    and the whole index was 2.84x the text; bench/search.py)."""
    return int(when.timestamp())


@dataclass(frozen=True)
class Indexable:
    article_id: int
    version: int
    title: str | None
    body: str
    when: datetime
    site_id: int


def site_token(site_id: int) -> str:
    """The token of an article's site in the FTS5 `meta` column (a `site:` filter)."""
    return f"s{site_id}"


def current_items(conn: Connection, article_ids: Sequence[int]) -> list[Indexable]:
    """What the index holds of these articles: their current version, time and site."""
    rows = conn.execute(
        select(
            ARTICLES.c.id,
            ARTICLES.c.version,
            VERSIONS.c.title,
            VERSIONS.c.body,
            func.coalesce(ARTICLES.c.publish_time, ARTICLES.c.first_seen),
            ARTICLES.c.site_id,
        )
        .join(
            VERSIONS,
            and_(VERSIONS.c.article_id == ARTICLES.c.id, VERSIONS.c.version == ARTICLES.c.version),
        )
        .where(ARTICLES.c.id.in_(article_ids))
    )
    return [Indexable(r[0], r[1], r[2], r[3] or "", _aware(r[4]), r[5]) for r in rows]


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def index_articles(session: Session, article_ids: Iterable[int]) -> int:
    """Put the current version of these articles in the index (replacing what was there)."""
    ids = list(dict.fromkeys(article_ids))
    conn = session.connection()
    done = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        items = current_items(conn, chunk)
        vectors = conn.dialect.name == "postgresql"
        index_entries(conn, chunk, [(item, entry_text(item, vectors)) for item in items])
        done += len(items)
    return done


def index_entries(
    conn: Connection,
    article_ids: Sequence[int],
    entries: Sequence[tuple[Indexable, Entry]],
) -> None:
    """Replace these articles' index entries with these (tokenised already, see entry_text)."""
    _forget(conn, article_ids)
    write_entries(conn, entries)


class Entry(NamedTuple):
    """An article's index entry, made before the transaction that writes it (in a worker
    process of reindex, or of the crawl's deriver): its title's and body's tokens (the
    columns of SQLite's FTS5 table) and, for PostgreSQL, their codes in binary form."""

    title: str
    body: str
    vector: bytes | None = None  # `entry_codes`


def entry_text(item: Indexable, vector: bool = False) -> Entry:
    """The entry of an article: its tokens (SQLite) or, if `vector`, its codes (PostgreSQL)."""
    if vector:
        return Entry("", "", entry_codes(search_form(item.title or ""), search_form(item.body)))
    return Entry(index_text(item.title), index_text(item.body))


def _forget(conn: Connection, article_ids: Sequence[int]) -> None:
    """Take these articles out of the index. FTS5 without content needs the very tokens it
    indexed to delete them, so they are made again from the version that was indexed."""
    old = conn.execute(
        select(DOCS.c.article_id, DOCS.c.doc_id, DOCS.c.version).where(
            DOCS.c.article_id.in_(article_ids)
        )
    ).all()
    if not old:
        return
    if conn.dialect.name == "sqlite":
        versions = {
            (r[0], r[1]): (r[2], r[3] or "", r[4])
            for r in conn.execute(
                select(VERSIONS.c.article_id, VERSIONS.c.version, VERSIONS.c.title, VERSIONS.c.body,
                       ARTICLES.c.site_id)
                .join(ARTICLES, ARTICLES.c.id == VERSIONS.c.article_id)
                .where(VERSIONS.c.article_id.in_([o[0] for o in old]))
            )
        }  # fmt: skip
        for article_id, doc_id, version in old:
            title, body, site_id = versions.get((article_id, version), (None, "", 0))
            conn.execute(
                text(
                    "INSERT INTO search_fts (search_fts, rowid, body, title, meta)"
                    " VALUES ('delete', :doc, :body, :title, :meta)"
                ),
                {
                    "doc": doc_id,
                    "body": index_text(body),
                    "title": index_text(title),
                    "meta": site_token(site_id),
                },
            )
    conn.execute(DOCS.delete().where(DOCS.c.article_id.in_([o[0] for o in old])))


def free_keys(conn: Connection, items: Sequence[Indexable]) -> dict[int, int]:
    """Each article's order key: the first second at or after its time that neither an
    indexed article nor an earlier one of these holds (pages that give only a date all
    want midnight).

    The articles are taken in time order, so that a run of held keys is read once a
    batch, not once an article: everything from where the last lookup began to the last
    key given is held, and an article whose time falls in there goes on from that key.
    (Read an article at a time, a day of date-only pages made each new one read every key
    the day already held: in bench/crawl.py, 4.4 million keys read for 5,000 pages.)
    """
    keys: dict[int, int] = {}
    last: int | None = None
    held: Iterator[int] = iter(())
    head: int | None = None
    for item in sorted(items, key=lambda i: (i.when, i.article_id)):
        key = order_key(item.when)
        if last is not None and key <= last:
            key = last + 1
        else:
            held = _held_from(conn, key)
            head = next(held, None)
        while head is not None and head <= key:
            if head == key:
                key += 1
            head = next(held, None)
        keys[item.article_id] = last = key
    return keys


def _held_from(conn: Connection, key: int) -> Iterator[int]:
    """The indexed keys from `key` up, in order, read in pages that grow (most lookups need
    only the first few)."""
    page = 16
    while True:
        chunk = list(
            conn.scalars(
                select(DOCS.c.doc_id)
                .where(DOCS.c.doc_id >= key)
                .order_by(DOCS.c.doc_id)
                .limit(page)
            )
        )
        yield from chunk
        if len(chunk) < page:
            return
        key, page = chunk[-1] + 1, min(page * 4, 4096)


def write_entries(
    conn: Connection,
    entries: Sequence[tuple[Indexable, Entry]],
    keys: dict[int, int] | None = None,
) -> None:
    """Insert index entries for articles that have none (at `keys`, or free ones).

    On PostgreSQL two processes writing entries at once (the derive passes of crawl
    workers write them under the clusters' lock, archive.store.apply_derived, but this
    does not count on it) may take the same free key: the entries whose key (or article)
    another committed first are skipped by the INSERT, which waits for that other
    transaction, and written again at the next free keys; an article another process has
    just indexed is left with that entry."""
    if not entries:
        return
    postgres = conn.dialect.name == "postgresql"
    if not postgres:
        wanted = keys if keys is not None else free_keys(conn, [item for item, _ in entries])
        conn.execute(DOCS.insert(), _rows(entries, wanted))
        conn.exec_driver_sql(
            "INSERT INTO search_fts (rowid, body, title, meta) VALUES (?, ?, ?, ?)",
            [
                (wanted[item.article_id], entry.body, entry.title, site_token(item.site_id))
                for item, entry in entries
            ],
        )
        return
    pending = list(entries)
    while pending:
        wanted = keys if keys is not None else free_keys(conn, [item for item, _ in pending])
        # in key order: two writers then wait for each other's keys in one order, never
        # each for the other's (a deadlock, every few seconds with four crawl workers)
        pending.sort(key=lambda pair: wanted[pair[0].article_id])
        conn.execute(_NEW_ENTRIES_TABLE)
        _copy_rows(
            conn,
            _NEW_ENTRIES,
            [
                (wanted[item.article_id], item, entry.vector or _codes_of(entry))
                for item, entry in pending
            ],
        )
        if keys is not None:  # a rebuild's own keys: no other writer
            conn.execute(_INSERT_NEW)
            return
        written = set(conn.scalars(_INSERT_NEW_FREE))
        missed = [pair for pair in pending if pair[0].article_id not in written]
        if not missed:
            return
        indexed = set(
            conn.scalars(
                select(DOCS.c.article_id).where(
                    DOCS.c.article_id.in_([item.article_id for item, _ in missed])
                )
            )
        )
        pending = [pair for pair in missed if pair[0].article_id not in indexed]


def _rows(entries: Sequence[tuple[Indexable, Entry]], keys: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "article_id": item.article_id,
            "doc_id": keys[item.article_id],
            "version": item.version,
            "site_id": item.site_id,
        }
        for item, _ in entries
    ]


def _codes_of(entry: Entry) -> bytes:
    """The binary codes of an entry made of token strings (SQLite's kind of entry)."""
    return codes_binary(np.array(vector_codes(entry.title, entry.body), dtype=np.int64))


# New entries reach search_docs through a temporary table of the session's own, filled by
# a binary COPY of codes made by numpy (`entry_codes`): a crawl worker's derive pass sent
# them as text that the server parsed, 0.35 ms an entry (the COPY 0.07), and making the
# text took as long again (bench/distributed.py). The move empties it; so does the commit.
# One move for the whole batch, so the count triggers (migration 0021) fire once a batch,
# not once an entry (an executemany is a statement a row: 6 ms an article more at 1M).
_NEW_ENTRIES = "ufa_new_entries"
_COLUMNS = "article_id, doc_id, version, site_id, vector"
_NEW_ENTRIES_TABLE = text(
    f"DO $$ BEGIN IF to_regclass('pg_temp.{_NEW_ENTRIES}') IS NULL THEN"
    f" CREATE TEMPORARY TABLE {_NEW_ENTRIES} (LIKE search_docs INCLUDING STORAGE)"
    " ON COMMIT DELETE ROWS; END IF; END $$"
)
_INSERT_NEW = text(
    f"WITH new AS (DELETE FROM {_NEW_ENTRIES} RETURNING {_COLUMNS})"
    f" INSERT INTO search_docs ({_COLUMNS}) SELECT {_COLUMNS} FROM new ORDER BY doc_id"
)
_INSERT_NEW_FREE = text(f"{_INSERT_NEW.text} ON CONFLICT DO NOTHING RETURNING article_id")


def clear_index(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "sqlite":
        conn.execute(text("INSERT INTO search_fts (search_fts) VALUES ('delete-all')"))
    conn.execute(DOCS.delete())


def coverage(session: Session) -> tuple[int, int]:
    """(articles in the index, articles stored)."""
    indexed = session.scalar(select(func.count()).select_from(DOCS)) or 0
    stored = session.scalar(select(func.count()).select_from(ARTICLES)) or 0
    return int(indexed), int(stored)


# --- searching -----------------------------------------------------------------------------------


@dataclass
class Hit:
    record: dict[str, Any]  # the export record without body
    snippet: str  # HTML-escaped, matches in <mark>...</mark>
    score: float | None
    republications: int  # other articles in its cluster

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.record,
            "snippet": self.snippet,
            "score": self.score,
            "republications": self.republications,
        }


@dataclass
class SearchResult:
    query: Query
    total: int  # matching articles, copies included
    hits: list[Hit]
    ranked: int | None = None  # relevance ranked only this many newest matches (see _fts_select)
    estimated: bool = False  # total is an estimate from a sample (`_count`, PostgreSQL)


def search(
    session: Session,
    query: str,
    *,
    site: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    offset: int = 0,
    sort: Sort = "relevance",
    all_copies: bool = False,
    count: bool = True,
) -> SearchResult:
    """Search the archive: the function behind `ufarchive search` and the web UI."""
    conn = session.connection()
    parsed = _rarest_first(conn, parsed_for_search(query, site, since, until))
    found = _collapse(conn, parsed, sort, limit, offset, all_copies)
    total, estimated = _count(conn, parsed, exact=False) if count else (len(found), False)
    if estimated:  # (never fewer than the hits in hand)
        total = max(total, offset + len(found))
    window = rank_window(conn)
    ranked = window if sort == "relevance" and parsed.has_text and total > window else None
    return SearchResult(parsed, total, _hits(conn, parsed, found), ranked, estimated)


def rank_window(conn: Connection) -> int:
    """How many of the newest matches (those that pass the filters) relevance ranks at most."""
    return PG_RANK_WINDOW if conn.dialect.name == "postgresql" else RANK_WINDOW


def count_matches(session: Session, query: str) -> int:
    """How many articles (copies included) match a query."""
    conn = session.connection()
    return _count(conn, _rarest_first(conn, parsed_for_search(query)))[0]


def matching_ids(session: Session, query: str) -> Select[Any]:
    """The ids of every article the query matches, copies included, as a subquery (for
    exports, which read them joined to the rest of the record)."""
    conn = session.connection()
    inner = _select(conn, _rarest_first(conn, parsed_for_search(query)), None).subquery()
    return select(inner.c.article_id)


def parsed_for_search(
    query: str,
    site: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Query:
    parsed = parse_query(query)
    if site:
        parsed.sites.append(site)
    parsed.since = since or parsed.since
    parsed.until = until or parsed.until
    if not parsed.has_text and not parsed.excluded and not _has_filters(parsed):
        raise QueryError(query, "nothing to search for")
    return parsed


def _has_filters(parsed: Query) -> bool:
    return bool(
        parsed.sites or parsed.not_sites or parsed.fields or parsed.since or parsed.until
        or parsed.statuses or parsed.not_statuses or parsed.changed is not None
    )  # fmt: skip


FTS = table("search_fts", column("rowid", BigInteger), column("search_fts"))


def _fts_match(expression: str) -> ColumnElement[bool]:
    return FTS.c.search_fts.op("MATCH")(expression)


def _fts_expression(
    terms: Sequence[Sequence[Term]],
    excluded: Sequence[Term],
    sites: tuple[str | None, str | None] = (None, None),
) -> str:
    """The FTS5 query: every clause, the wanted sites, none of the excluded terms or sites."""
    wanted, unwanted = sites
    parts = ["(" + " OR ".join(t.fts5() for t in c) + ")" for c in terms]
    expression = " AND ".join(parts + ([f"({wanted})"] if wanted else []))
    nots = [t.fts5() for t in excluded] + ([unwanted] if unwanted else [])
    if nots:
        expression = f"({expression}) NOT ({' OR '.join(nots)})"
    return expression


def _int4s(codes: Iterable[int]) -> ColumnElement[Any]:
    """An int4[] constant, written into the statement (the planner sees it, and EXPLAIN of
    a compiled query works; codes are integers, nothing to escape)."""
    return literal_column(f"'{codes_literal(list(codes))}'::int4[]")


def _term_hits(term: Term, vector: Any, first_only: bool) -> ColumnElement[Any]:
    """`ufa_hits` of a term in an entry's codes: its occurrences, a title's counted
    TITLE_WEIGHT times (or 1 at the first one, for a test)."""
    codes, prefix = term.codes()
    low, high, closing = (str(n) for n in prefix) if prefix else ("NULL", "NULL", "NULL")
    return func.ufa_hits(
        vector, _int4s(codes),
        literal_column(f"{low}::int4"), literal_column(f"{high}::int4"),
        literal_column(f"{closing}::int4"), literal_column(f"{int(TITLE_WEIGHT)}::int4"),
        literal_column("true" if first_only else "false"),
    )  # fmt: skip


def _term_match(term: Term, docs: Any) -> ColumnElement[bool]:
    """An entry of `docs` (search_docs, or a subquery of its doc_id and vector) holds the
    term: all its codes, from the GIN index (`@>`), and for more than one token or a
    prefix, them in order (`ufa_hits`, on the entry's codes)."""
    vector = docs.c.vector
    codes, prefix = term.codes()
    parts: list[ColumnElement[bool]] = []
    if codes:
        parts.append(_holds(term, docs))
    # A term of one character alone has nothing for the GIN index: array_ops cannot search
    # its range of codes, and `&&` with all 28,097 of them took seconds (bench/pg_shapes.py);
    # every entry (or, for a common character, the newest: `_pg_probe`) is checked instead.
    if prefix or len(codes) > 1:
        parts.append(_term_hits(term, vector, first_only=True) > 0)
    return and_(*parts)


def _holds(term: Term, docs: Any) -> ColumnElement[bool]:
    """An entry holds all of a term's codes (`@>`), as the GIN index answers it: its two
    halves (`GIN_HALVES`, one for even doc_ids, one for odd: built at once from two
    connections, `rebuild_index`) are each partial, and the planner uses a partial index
    only for a condition that names its half. So the test is written once for each half,
    `(half 0 AND vector @> codes) OR (half 1 AND codes <@ vector)`, which the planner
    answers with a BitmapOr of both. The second half's test is the same one written the
    other way round on purpose: written alike, the planner takes the `@>` out of the OR
    as common to both, and then no half is named beside it (prepqual.c,
    process_duplicate_ors). A document walked (`_pg_probe`) tests its half first, so its
    codes are read once."""
    return _contains(docs, _int4s(term.checked or sorted(set(term.codes()[0]))))


def _contains(docs: Any, codes: ColumnElement[Any]) -> ColumnElement[bool]:
    """`_holds` of an int4[] expression."""
    doc_id, vector = docs.c.doc_id, docs.c.vector
    return or_(
        and_(_half(doc_id, 0), vector.bool_op("@>")(codes)),
        and_(_half(doc_id, 1), codes.bool_op("<@")(vector)),
    )


#: The GIN index of search_docs.vector on PostgreSQL, in two partial indexes: even doc_ids
#: and odd ones (migration 0023). PostgreSQL 15 builds a GIN index on one core; two built
#: at once from two connections took 59 s at 100,000 articles where one whole took 101
#: (bench/search.py).
GIN_HALVES = SEARCH_GIN_HALVES


def _half(doc_id: Any, half: int) -> ColumnElement[bool]:
    """The documents of one GIN half: their doc_id's lowest bit (the same expression as
    the partial indexes', so that the planner sees it implies theirs)."""
    lowest_bit: ColumnElement[Any] = doc_id.op("&")(literal_column("1"))
    return lowest_bit == literal_column(str(half))


def gin_half_sql(half: int) -> str:
    """The CREATE INDEX of one half of the GIN index (`GIN_HALVES`), its condition `_half`'s
    own (the planner matches them as written)."""
    where = _half(column("doc_id"), half).compile(compile_kwargs={"literal_binds": True})
    name = GIN_HALVES[half]
    return f"CREATE INDEX IF NOT EXISTS {name} ON search_docs USING gin (vector) WHERE {where}"


def _rarest_first(conn: Connection, parsed: Query) -> Query:
    """The query with each term's codes in the order `@>` is best to test them in a row:
    the rarest first. PostgreSQL looks for each code of the right-hand array in turn,
    through the whole entry (some 1,300 codes) when it is absent, and stops at the first
    absent: a walk of the newest 5,000 entries for a 4-character word took 63 ms with a
    common bigram first, 44 with the rarest (29 of them reading the entries). Done once
    where a query enters (`search`, `count_matches`, `matching_ids`); SQLite's as it is."""
    if conn.dialect.name != "postgresql" or not parsed.has_text:
        return parsed
    stats = _code_shares(conn)
    if stats is None:
        return parsed
    shares, rare = stats

    def ordered(term: Term) -> Term:
        codes = set(term.codes()[0])
        return replace(term, checked=tuple(sorted(codes, key=lambda c: (shares.get(c, rare), c))))

    return replace(
        parsed,
        clauses=[[ordered(t) for t in clause] for clause in parsed.clauses],
        excluded=[ordered(t) for t in parsed.excluded],
    )


def _pg_gin(clauses: Sequence[Sequence[Term]], docs: Any) -> ColumnElement[bool]:
    """Every clause's codes (any of its terms'), as the GIN index finds them: the candidates
    that `_pg_match` would then check in order (every term has codes: `_ranged`)."""
    return and_(*[or_(*[_holds(t, docs) for t in clause]) for clause in clauses])


def _pg_match(
    clauses: Sequence[Sequence[Term]], excluded: Sequence[Term], docs: Any
) -> ColumnElement[bool]:
    """Every clause (any of its terms), none of the excluded terms, in an entry's codes
    (`docs`: search_docs, or a subquery of its doc_id and vector)."""
    return and_(
        *[or_(*[_term_match(t, docs) for t in clause]) for clause in clauses],
        *[not_(_term_match(t, docs)) for t in excluded],
    )


def _pg_score(parsed: Query, vector: Any) -> ColumnElement[Any]:
    """Relevance on PostgreSQL: the occurrences of every wanted term, a title's counted
    TITLE_WEIGHT times (ufa_hits). No length normalisation, as ts_rank_cd's default."""
    terms = [t for clause in parsed.clauses for t in clause]
    score: ColumnElement[Any] = _term_hits(terms[0], vector, first_only=False)
    for term in terms[1:]:
        score = score + _term_hits(term, vector, first_only=False)
    return score


def _select(conn: Connection, parsed: Query, sort: Order, limit: int | None = None) -> Select[Any]:
    """Matching articles as (article id, cluster id, score), in the order asked for
    (sort None: unordered, for counting), at most `limit` of them."""
    postgres = conn.dialect.name == "postgresql"
    if parsed.has_text and postgres:
        return _pg_select(conn, parsed, sort, limit)
    if parsed.has_text:
        return _fts_select(conn, parsed, sort, limit)
    score: ColumnElement[Any] = literal(None)
    query = (
        select(DOCS.c.article_id, ARTICLES.c.cluster_id, score)
        .select_from(DOCS)
        .join(ARTICLES, ARTICLES.c.id == DOCS.c.article_id)
    )
    newest = best = DOCS.c.doc_id.desc()
    if parsed.excluded and postgres:
        query = query.where(_pg_match([], parsed.excluded, DOCS))
    elif parsed.excluded:  # nothing to include: everything but the excluded
        excluded = " OR ".join(t.fts5() for t in parsed.excluded)
        query = query.where(DOCS.c.doc_id.not_in(select(FTS.c.rowid).where(_fts_match(excluded))))  # fmt: skip
    if parsed.sites or parsed.not_sites:
        query = query.join(SITES, SITES.c.id == ARTICLES.c.site_id)
    if parsed.fields:
        query = query.join(
            VERSIONS,
            and_(VERSIONS.c.article_id == ARTICLES.c.id, VERSIONS.c.version == ARTICLES.c.version),
        )
    query = query.where(*_filters(parsed))
    return _ordered(query, sort, newest, best, limit)


def _pg_select(conn: Connection, parsed: Query, sort: Order, limit: int | None) -> Select[Any]:
    """`_select` on PostgreSQL with words to find: the matches from the GIN index, the
    filters applied to the documents first (so that relevance's window is of filtered
    matches). Left to itself the planner walks the doc_id index newest first and tests
    every row's codes (58 ms for a phrase found once in 5,000 articles;
    bench/search.py); `_pg_probe` does that walk where it is the quicker way, bounded."""
    score: ColumnElement[Any] = literal(None)
    if sort == "relevance" and _ranged(parsed):  # each candidate's codes read once
        candidates = _ranged_step(conn, parsed, None, None, scored=True).subquery()
        matched = (
            select(candidates.c.doc_id, candidates.c.article_id, candidates.c.score)
            .where(candidates.c.ok)
            .order_by(candidates.c.doc_id.desc())
            .limit(rank_window(conn))
            .cte("scored")
            .prefix_with("MATERIALIZED")
        )
        return _with_clusters(matched, sort, limit)
    source = _pg_documents(conn, parsed)
    hits = select(source.c.article_id, source.c.doc_id, score.label("score")).where(
        _pg_match(parsed.clauses, parsed.excluded, source)
    )
    matched = hits.cte("matched").prefix_with("MATERIALIZED")
    if sort == "relevance":  # of the matches the newest, and only their codes read again
        newest_hits = (
            select(matched.c.article_id, matched.c.doc_id)
            .order_by(matched.c.doc_id.desc())
            .limit(rank_window(conn))
            .cte("newest_hits")
            .prefix_with("MATERIALIZED")
        )
        matched = (
            select(
                newest_hits.c.article_id,
                newest_hits.c.doc_id,
                _pg_score(parsed, DOCS.c.vector).label("score"),
            )
            .join(DOCS, DOCS.c.doc_id == newest_hits.c.doc_id)
            .cte("scored")
            .prefix_with("MATERIALIZED")
        )
    return _with_clusters(matched, sort, limit)


def _with_clusters(hits: Any, sort: Order, limit: int | None) -> Select[Any]:
    """(article id, cluster id, score) of `hits` (article_id, doc_id, score), in order; the
    page taken before the articles are joined (joined first, every match was, and the
    planner read every article for it: 85 of 112 ms for a word in 9,000 of 200,000)."""
    if sort is not None and limit:
        page = select(hits.c.article_id, hits.c.doc_id, hits.c.score)
        hits = _ordered(page, sort, hits.c.doc_id.desc(), hits.c.score.desc(), limit).subquery()
    query = (
        select(hits.c.article_id, ARTICLES.c.cluster_id, hits.c.score)
        .select_from(hits)
        .join(ARTICLES, ARTICLES.c.id == hits.c.article_id)
    )
    return _ordered(query, sort, hits.c.doc_id.desc(), hits.c.score.desc(), None)


def _pg_found(parsed: Query, found: Sequence[Found], sort: Sort, limit: int) -> Select[Any]:
    """The matches `_pg_probe` found as (article id, cluster id, score), in order; scored
    here if the probe did not (only these entries' codes read again)."""
    doc_ids = bindparam("doc_ids", [f.doc_id for f in found], type_=ARRAY(BigInteger))
    unscored = any(f.score is None for f in found)
    if sort == "relevance" and unscored:
        score = _pg_score(parsed, DOCS.c.vector).label("score")
        hits: Any = (
            select(DOCS.c.article_id, DOCS.c.doc_id, score)
            .where(DOCS.c.doc_id == any_(doc_ids))
            .subquery("found")
        )
        return _with_clusters(hits, sort, limit)
    article_ids = bindparam("article_ids", [f.article_id for f in found], type_=ARRAY(BigInteger))
    scores = bindparam("scores", [f.score or 0 for f in found], type_=ARRAY(Integer))
    rows = (
        func.unnest(doc_ids, article_ids, scores)
        .table_valued(
            column("doc_id", BigInteger), column("article_id", BigInteger), column("score", Integer)
        )
        .render_derived(name="found", with_types=False)
    )
    score = (literal(None) if unscored else rows.c.score).label("score")
    hits = select(rows.c.doc_id, rows.c.article_id, score).subquery("hits")
    return _with_clusters(hits, sort, limit)


def _ordered(
    query: Select[Any], sort: Order, newest: Any, best: Any, limit: int | None
) -> Select[Any]:
    if sort == "newest":
        query = query.order_by(newest)
    elif sort == "relevance":
        query = query.order_by(best, newest)
    return query.limit(limit) if limit else query


def _pg_documents(
    conn: Connection,
    parsed: Query,
    step: int | None = None,
    below: int | None = None,
    *,
    keys_only: bool = False,
    gin: bool = False,
    lowest: int | None = None,
) -> Any:
    """The documents a text query tests on PostgreSQL: those that pass its filters; with
    `step`, only the newest `step` of them (below doc_id `below`, from `lowest`); with
    `gin`, those that hold every clause's codes (`_pg_gin`, from the GIN index). The
    site is a column of search_docs (indexed with doc_id, so one site's newest come
    straight off that index) and, for a step, `since` also a doc_id bound (keys are never
    earlier than their article's time). `keys_only`: only doc_id (an index-only walk: 20
    ms for 60,000 keys with article_id at 1M articles, the heap read for it)."""
    where = _pg_site_filters(conn, parsed)
    if lowest is not None:
        where.append(DOCS.c.doc_id >= lowest)
    if gin:
        where.append(_pg_gin(parsed.clauses, DOCS))
    # A step bounds since: by doc_id alone: a ranged step's candidates are then filtered
    # exactly (`_ranged_step`), a walk's matches checked (`_since_holds`). Joining every
    # document walked to its article took 17 of 32 ms of a ranged step at 1M, and 140 of
    # 190 ms of a walk for relevance (the planner hashed every article since the date).
    others = _filters(parsed, sites=False, since=not step)
    if parsed.since and step:  # (without steps the planner would walk that range
        # testing every entry, where the GIN index is quicker: 475 ms for a word in
        # 5 % of 40,000 articles at 200k)
        where.append(DOCS.c.doc_id >= order_key(parsed.since))
    if below is not None:
        where.append(DOCS.c.doc_id < below)
    source: Any = DOCS
    if others:
        source = source.join(ARTICLES, ARTICLES.c.id == DOCS.c.article_id)
    if parsed.fields:
        source = source.join(
            VERSIONS,
            and_(VERSIONS.c.article_id == ARTICLES.c.id, VERSIONS.c.version == ARTICLES.c.version),
        )
    columns = (DOCS.c.article_id, DOCS.c.doc_id, DOCS.c.vector)
    documents = (
        select(*(columns[1:2] if keys_only else columns)).select_from(source).where(*where, *others)
    )
    if step:
        documents = documents.order_by(DOCS.c.doc_id.desc()).limit(step)
    return documents.subquery("documents")


def _pg_site_filters(conn: Connection, parsed: Query) -> list[ColumnElement[bool]]:
    """site: and -site: as conditions on search_docs.site_id (the names looked up first, so
    that the planner sees the ids)."""

    where: list[ColumnElement[bool]] = []
    if parsed.sites:  # no such site: an id no site has (they start at 1)
        where.append(DOCS.c.site_id.in_(_site_ids(conn, parsed.sites) or [0]))
    if parsed.not_sites and (unwanted := _site_ids(conn, parsed.not_sites)):
        where.append(DOCS.c.site_id.not_in(unwanted))
    return where


def _fts_select(conn: Connection, parsed: Query, sort: Order, limit: int | None) -> Select[Any]:
    """`_select` on SQLite with words to find: FTS5 drives, newest first by reading its rowid
    order backwards (the scan stops when the page is full). A site filter is part of the
    FTS5 query (the `meta` column) and `since` a rowid bound, so neither joins every match.

    Relevance ranks the newest RANK_WINDOW matches: FTS5 scores every match it is asked to
    rank (bm25 needs each one's position lists), and a common word's 500,000 matches took
    seconds (bench/search.py); a query matching fewer is ranked exactly."""
    match = _fts_match(_fts_expression(parsed.clauses, parsed.excluded, _site_terms(conn, parsed)))
    # bm25 only to rank: its first call reads every match's doclist once for the weights
    # (20 ms for a word in every article of a million), whatever the LIMIT
    score: ColumnElement[Any] = (
        func.bm25(literal_column("search_fts"), 1.0, TITLE_WEIGHT, 0.0)
        if sort == "relevance"
        else literal(None)
    ).label("score")
    where: list[ColumnElement[bool]] = [match]
    if parsed.since:  # keys are never earlier than their article's time (free_keys)
        where.append(FTS.c.rowid >= order_key(parsed.since))
    filters = _filters(parsed, sites=False)
    if filters or sort != "relevance" or not limit:
        windowed = sort == "relevance" and limit
        query = (
            select(DOCS.c.article_id, ARTICLES.c.cluster_id, score)
            .add_columns(*([FTS.c.rowid.label("doc_id")] if windowed else []))
            .select_from(FTS.join(DOCS, DOCS.c.doc_id == FTS.c.rowid))
            .join(ARTICLES, ARTICLES.c.id == DOCS.c.article_id)
            .where(*where, *filters)
        )
        if parsed.fields:
            query = query.join(
                VERSIONS,
                and_(
                    VERSIONS.c.article_id == ARTICLES.c.id, VERSIONS.c.version == ARTICLES.c.version
                ),
            )
        if sort == "newest":
            query = query.order_by(FTS.c.rowid.desc())
        elif sort == "oldest":
            query = query.order_by(FTS.c.rowid.asc())
        elif windowed:
            window = query.order_by(FTS.c.rowid.desc()).limit(RANK_WINDOW).subquery()
            return (
                select(window.c.article_id, window.c.cluster_id, window.c.score)
                .order_by(window.c.score, window.c.doc_id.desc())
                .limit(limit)
            )
        return query.limit(limit) if limit else query
    # relevance without filters: the window and its ranking in the FTS table alone, and
    # only the top joined
    window = (
        select(FTS.c.rowid.label("doc_id"), score)
        .where(*where)
        .order_by(FTS.c.rowid.desc())
        .limit(RANK_WINDOW)
        .subquery()
    )
    top = select(window).order_by(window.c.score, window.c.doc_id.desc()).limit(limit).subquery()
    return (
        select(DOCS.c.article_id, ARTICLES.c.cluster_id, top.c.score)
        .select_from(top)
        .join(DOCS, DOCS.c.doc_id == top.c.doc_id)
        .join(ARTICLES, ARTICLES.c.id == DOCS.c.article_id)
        .order_by(top.c.score, top.c.doc_id.desc())
    )


def _site_ids(conn: Connection, names: list[str]) -> list[int]:
    return list(conn.scalars(select(SITES.c.id).where(SITES.c.name.in_(names))))


def _site_terms(conn: Connection, parsed: Query) -> tuple[str | None, str | None]:
    """FTS5 expressions for the sites wanted and the sites excluded (by their tokens)."""

    def tokens(names: list[str]) -> list[str]:
        return [f"meta : {site_token(site_id)}" for site_id in _site_ids(conn, names)]

    wanted = excluded = None
    if parsed.sites:  # no such site: a token no article has (site ids start at 1)
        wanted = " OR ".join(tokens(parsed.sites) or [f"meta : {site_token(0)}"])
    if parsed.not_sites and (found := tokens(parsed.not_sites)):
        excluded = " OR ".join(found)
    return wanted, excluded


def _filters(parsed: Query, sites: bool = True, since: bool = True) -> list[ColumnElement[bool]]:
    """The query's filters as SQL (without the site ones, which FTS5 applies on SQLite;
    without since:, where a doc_id bound stands in for it)."""
    where: list[ColumnElement[bool]] = []
    if parsed.sites and sites:
        where.append(SITES.c.name.in_(parsed.sites))
    if parsed.not_sites and sites:
        where.append(SITES.c.name.not_in(parsed.not_sites))
    for name, value, negated in parsed.fields:
        column = VERSIONS.c[name]
        forms = sorted({value, to_simplified(value), to_traditional(value)})
        matches = or_(*(column.contains(form, autoescape=True) for form in forms))
        where.append(or_(column.is_(None), not_(matches)) if negated else matches)
    if parsed.since and since:
        where.append(_since(parsed.since))
    if parsed.until:
        where.append(ARTICLES.c.publish_time < parsed.until)
    if parsed.statuses:
        where.append(ARTICLES.c.status.in_(parsed.statuses))
    if parsed.not_statuses:
        where.append(ARTICLES.c.status.not_in(parsed.not_statuses))
    if parsed.changed is not None:
        where.append(ARTICLES.c.version > 1 if parsed.changed else ARTICLES.c.version == 1)
    return where


def _since(since: datetime) -> ColumnElement[bool]:
    return ARTICLES.c.publish_time >= since


def _count(conn: Connection, parsed: Query, exact: bool = True) -> tuple[int, bool]:
    """Matching articles, copies included, and whether that is an estimate: the index alone
    answers when nothing is filtered. On PostgreSQL a phrase's count reads every candidate
    the GIN index gives (about 20 us each: seconds for a common 4-character word at a
    million articles); unless `exact`, past COUNT_READS candidates the newest COUNT_SAMPLE
    are read and the count estimated from the share of them that match."""
    postgres = conn.dialect.name == "postgresql"
    if postgres and not _has_filters(parsed) and (code := _one_code(parsed)) is not None:
        kept = _kept_count(conn, code)
        if kept is not None:
            return kept, False
    if parsed.has_text and postgres and not exact and _ranged(parsed):
        candidates = _candidates(conn, parsed)
        if candidates > COUNT_READS:
            sample = _ranged_step(conn, parsed, None, None, False, COUNT_SAMPLE).subquery()
            with _gin_plan(conn):
                read, matched = conn.execute(
                    select(func.count(), func.count().filter(sample.c.ok))
                ).one()
            return _round(candidates * matched / max(read, 1)), True
    if parsed.has_text and postgres and not _has_filters(parsed):
        query = select(func.count()).where(_pg_match(parsed.clauses, parsed.excluded, DOCS))
        with _gin_plan(conn):
            return int(conn.scalar(query) or 0), False
    if parsed.has_text and not postgres and not _filters(parsed, sites=False):
        sites = _site_terms(conn, parsed)
        expression = _fts_expression(parsed.clauses, parsed.excluded, sites)
        query = select(func.count()).select_from(FTS).where(_fts_match(expression))
        return int(conn.scalar(query) or 0), False
    inner = _select(conn, parsed, None).subquery()
    return int(conn.scalar(select(func.count()).select_from(inner)) or 0), False


def _one_code(parsed: Query) -> int | None:
    """The code of a query that is one token and nothing else (a 2-character word, say)."""
    if parsed.excluded or len(parsed.clauses) != 1 or len(parsed.clauses[0]) != 1:
        return None
    codes, prefix = parsed.clauses[0][0].codes()
    return codes[0] if prefix is None and len(codes) == 1 else None


def _kept_count(conn: Connection, code: int) -> int | None:
    """The entries holding a common code, added up from search_code_counts (PostgreSQL;
    migration 0021): None if the code is not among the common ones."""
    total = (
        select(func.coalesce(func.sum(COUNTS.c.docs), 0))
        .where(COUNTS.c.code == code)
        .scalar_subquery()
    )
    row = conn.execute(select(total).where(COMMON.c.code == code)).first()
    return None if row is None else int(row[0])


#: Entries holding a code for its count to be kept (PostgreSQL): counting fewer from the
#: GIN index takes a few ms (about 70 ns a posting), more up to 72 ms at a million.
COMMON_DOCS = 50_000


@dataclass(frozen=True)
class CommonCodes:
    """What `refresh_common_codes` did."""

    kept: int  # codes whose count is kept now
    added: int  # of which newly common (counted from the GIN index)
    folded: int  # count rows added up


def refresh_common_codes(
    conn: Connection, wait: bool = True, most: int | None = None, parallel: bool = False
) -> CommonCodes:
    """Keep the counts of the codes now common (PostgreSQL; a no-op on SQLite): the codes
    ANALYZE finds in COMMON_DOCS entries or more are added to search_common_codes, each
    counted once from the GIN index (the `most` most common of them, if given), and every
    code's count rows are folded into one.

    Runs in the caller's transaction under a SHARE lock on search_docs, so that no entry
    is written between a code's count and the triggers counting it from then on (writers
    wait: about 70 ms for a code in a million entries); unless `wait`, gives up
    (LockNotAvailable) if writers hold the table for 2 s. Called by the index's rebuild,
    `db upgrade` and, every few minutes, by the scheduler (crawler.scheduling). With
    `parallel` (the rebuild's, which committed its entries) the codes are counted on two
    connections of their own at once: they read what the caller would, as no writer can
    commit while it holds its lock."""
    if conn.dialect.name != "postgresql":
        return CommonCodes(0, 0, 0)
    if not wait:
        conn.execute(text("SET LOCAL lock_timeout = '2s'"))
    conn.execute(text("LOCK TABLE search_docs IN SHARE MODE"))
    if not wait:
        conn.execute(text("SET LOCAL lock_timeout = 0"))
    shares = _common_shares(conn, _documents(conn) or 0.0)
    held = set(conn.scalars(select(COMMON.c.code)))
    added = sorted(sorted(set(shares) - held, key=lambda c: -shares[c])[:most])
    folded = conn.execute(
        text(
            "WITH gone AS (DELETE FROM search_code_counts RETURNING code, docs)"
            " INSERT INTO search_code_counts (code, docs)"
            " SELECT code, sum(docs) FROM gone GROUP BY code"
        )
    ).rowcount
    if added:
        counted = _count_codes(conn, added, parallel)
        conn.execute(COMMON.insert(), [{"code": c} for c in added])
        conn.execute(COUNTS.insert(), [{"code": c, "docs": n} for c, n in counted])
    return CommonCodes(len(held) + len(added), len(added), folded)


def _common_shares(conn: Connection, documents: float) -> dict[int, float]:
    """{code: share of the entries} of the codes ANALYZE's figures put in COMMON_DOCS of
    `documents` entries or more."""
    shares = (_read_code_shares(conn) or ({}, 0.0))[0]
    return {c: share for c, share in shares.items() if share * documents >= COMMON_DOCS}


def _codes_counted() -> Select[Any]:
    """Each of the codes `:codes` with the entries holding it (both GIN halves)."""
    code = column("c", Integer)
    entries = select(func.count()).where(_contains(DOCS, postgresql.array([code])))
    codes = func.unnest(bindparam("codes", type_=ARRAY(Integer))).table_valued("c")
    return select(code, entries.scalar_subquery()).select_from(codes.alias("c"))


_COUNT_CODES = _codes_counted()


def _count_codes(conn: Connection, codes: list[int], parallel: bool) -> list[tuple[int, int]]:
    """(code, entries holding it) of each code, from the GIN index; with `parallel`, half
    of the codes on each of two connections of their own at once (about 100 s at 1M on
    one: bench/search.py)."""

    def count(own: Connection, part: list[int]) -> list[tuple[int, int]]:
        with _gin_plan(own):
            return [(int(c), int(n)) for c, n in own.execute(_COUNT_CODES, {"codes": part})]

    if not parallel or len(codes) < 2:
        return count(conn, codes)

    def apart(part: list[int]) -> list[tuple[int, int]]:
        with conn.engine.connect() as own:
            return count(own, part)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return [row for part in pool.map(apart, [codes[0::2], codes[1::2]]) for row in part]


def _candidates(conn: Connection, parsed: Query) -> int:
    """The GIN index's candidates for a query (documents that pass its filters and hold
    every clause's codes), counted; no entry's codes read."""
    keys = _pg_documents(conn, parsed, gin=True, keys_only=True)
    with _gin_plan(conn):
        return int(conn.scalar(select(func.count()).select_from(keys)) or 0)


COUNT_READS = 10_000  # candidates read for an exact count at most (search, PostgreSQL)
COUNT_SAMPLE = 1_000  # ... and read to estimate it past that


def _round(value: float) -> int:
    """An estimate to three significant figures (it is not known better)."""
    if value < 1000:
        return round(value)
    scale = 10 ** (len(str(int(value))) - 3)
    return int(round(value / scale) * scale)


@contextmanager
def _gin_plan(conn: Connection) -> Iterator[None]:
    """The statements inside count from the GIN index (PostgreSQL): the planner does not
    charge for reading each entry's codes out of TOAST, and counted a common word by
    reading every entry (915 ms at 100,000 articles, 17 ms from the index;
    bench/pg_shapes.py). For this transaction's statements inside only."""
    names = ("enable_seqscan", "enable_indexscan")
    # read and set in one round trip (a select list is computed left to right)
    before = conn.execute(
        select(
            *[func.current_setting(n) for n in names],
            *[func.set_config(n, "off", True) for n in names],
        )
    ).one()[: len(names)]
    yield
    conn.execute(select(*[func.set_config(n, v, True) for n, v in zip(names, before, strict=True)]))


def _collapse(
    conn: Connection, parsed: Query, sort: Sort, limit: int, offset: int, all_copies: bool
) -> list[tuple[int, float | None]]:
    """The page of hits, one a cluster unless all copies are asked for.

    Rows are read in pages and collapsed here (eight times more while copies leave the
    page short); a LIMIT lets SQLite keep a top-N sort instead of sorting every match."""
    fetch = (offset + limit) * 2 + FETCH_SLACK
    postgres = conn.dialect.name == "postgresql"
    if parsed.has_text and postgres:
        if sort == "newest":  # the newest matches, a page's worth and on while it is short
            wanted, below, found = offset + limit + PROBE_SLACK, None, []
            for _ in range(PROBE_RESUMES):
                more = _pg_probe(conn, parsed, wanted, PG_PROBE_MAX, below=below)
                if more is None:
                    break
                found += more
                rows = conn.execute(_pg_found(parsed, found, sort, len(found))).all()
                page = _page(rows, offset, limit, all_copies)
                if len(page) >= limit or len(more) < wanted:  # (fewer: no more to find)
                    return page
                below, wanted = more[-1].doc_id, wanted * 2
        else:  # the window to rank
            ranked = _pg_probe(conn, parsed, rank_window(conn), PG_RANK_PROBE_MAX, scored=True)
            if ranked is not None:
                rows = conn.execute(_pg_found(parsed, ranked, sort, fetch)).all()
                page = _page(rows, offset, limit, all_copies)
                if len(page) >= limit or len(rows) < fetch:
                    return page
    if sort == "newest" and parsed.has_text and conn.dialect.name == "sqlite":
        # FTS5 reads a doclist backwards about half as fast as forwards: a query with few
        # matches (a rare phrase, whose whole doclists are read either way) is read forwards
        # and turned round; one with more than a page stops early backwards (bench/search.py)
        rows = conn.execute(_select(conn, parsed, "oldest", fetch + 1)).all()
        if len(rows) <= fetch:
            return _page(rows[::-1], offset, limit, all_copies)
    while True:
        rows = conn.execute(_select(conn, parsed, sort, fetch)).all()
        page = _page(rows, offset, limit, all_copies)
        if len(page) >= limit or len(rows) < fetch:
            return page
        fetch *= 8


class Found(NamedTuple):
    """A match `_pg_probe` found: its key, its article, its score if asked for."""

    doc_id: int
    article_id: int
    score: int | None


def _pg_probe(
    conn: Connection,
    parsed: Query,
    wanted: int,
    most: int,
    scored: bool = False,
    below: int | None = None,
) -> list[Found] | None:
    """The newest `wanted` matches of a text query (of the documents that pass its
    filters, below doc_id `below`), newest first, scored for relevance if `scored`, found
    in the newest documents a step at a time; all of them when there are fewer. None when
    the GIN index is the better way: a rare query, no statistics yet, or more than `most`
    documents to go through.

    A step tests every document of the step (their codes read from TOAST), unless it is
    ranged (`_first_step` chooses): then the GIN index gives the step's candidates and
    only they are read, once each, checked and scored together, and only if a phrase must
    be checked or a score is wanted (4-char words at 50,000 articles: 3,868 candidates in
    20,000 documents, 305 -> 62 ms)."""
    chosen = _first_step(conn, parsed, wanted, most, scored)
    if chosen is None:
        return None
    first, ranged, known = chosen.size, chosen.ranged, chosen.keys
    if known is not None and below is not None:
        known = [key for key in known if key < below]
    positional = any(t.positional for c in parsed.clauses for t in c)
    # a phrase found far more rarely than its rarest bigram promised (across two words)
    # has its GIN candidates counted once, after the first step, as a rare one is before
    doubt = ranged and positional and known is None and chosen.share > CHECK_SHARE
    if ranged:
        most *= KEY_SHARE
    found: list[Found] = []
    step, tested, read_before = first, 0, 0
    while True:
        if ranged:
            count, lowest = 0, None
            if known is None:
                ids = _pg_documents(conn, parsed, step, below, keys_only=True)
                count, lowest = conn.execute(select(func.count(), func.min(ids.c.doc_id))).one()
            # the newest candidates read first, about as many as matches are still wanted
            # (a step's keys overshoot by PROBE_MARGIN; reading is what costs)
            # (and as many more as the candidates read so far held no match)
            per_match = read_before / len(found) if found else 1.0
            most_read = math.ceil((wanted - len(found)) * READ_MARGIN * max(per_match, 1.0))
            most_read += READ_SLACK
            read: Sequence[Any] = []
            if known is not None:  # the candidates' keys are known: read the next ones
                chunk, known = known[:most_read], known[most_read:]
                if chunk:
                    read = conn.execute(
                        _ranged_step(conn, parsed, None, None, scored, keys=chunk)
                    ).all()
                    found.extend(Found(*row[:3]) for row in read if row[3])
                    read_before += len(read)
                if known and len(found) < wanted:
                    continue
                return found[:wanted]
            if count:
                with _gin_plan(conn):
                    step_ = _ranged_step(conn, parsed, lowest, below, scored, most_read)
                    read = conn.execute(step_).all()
                found.extend(Found(*row[:3]) for row in read if row[3])
                read_before += len(read)
            if len(read) == most_read and len(found) < wanted:
                below = read[-1][0]  # more candidates in this step: on from the last read
                continue
        else:
            # scored afterwards (`_pg_found`), only the matches wanted: a step's last
            # overshoots, and most documents walked are checked with one `@>`
            documents = _pg_documents(conn, parsed, step, below)
            match = _pg_match(parsed.clauses, parsed.excluded, documents)
            # each document checked once, behind a fence: as both aggregates' FILTER, the
            # check ran twice (2,188 documents at 1M: 39 -> 22 ms, 9 of them reading codes)
            walked = (
                select(documents.c.doc_id, documents.c.article_id, match.label("ok"))
                .offset(0)
                .subquery("walked")
            )
            newest = walked.c.doc_id.desc()
            count, lowest, doc_ids, article_ids = conn.execute(
                select(
                    func.count(),
                    func.min(walked.c.doc_id),
                    *[
                        func.array_agg(aggregate_order_by(value, newest)).filter(walked.c.ok)
                        for value in (walked.c.doc_id, walked.c.article_id)
                    ],
                )
            ).one()
            matched = [Found(*f, None) for f in zip(doc_ids or [], article_ids or [], strict=True)]
            found.extend(_since_holds(conn, parsed, matched))
        tested += count
        if len(found) >= wanted or count < step:
            return found[:wanted]
        if doubt:
            doubt = False
            if len(found) * DOUBT_RATIO < chosen.share * tested:
                keys = _candidate_keys(conn, parsed, wanted, chosen.documents)
                if keys is not None and lowest is not None:  # the rest, newest first
                    known = [k for k in keys if k < lowest]
                    continue
        # what the matches so far say is needed (none yet: as if there were one)
        step = math.ceil((wanted - len(found)) * PROBE_MARGIN * tested / max(len(found), 1))
        step = min(step, most - tested)
        if step <= 0:
            return None
        below = lowest


def _since_holds(conn: Connection, parsed: Query, found: list[Found]) -> list[Found]:
    """The matches of a walk whose articles pass since: (the walk bounded it by doc_id
    alone: a key is never earlier than its article's time, but an article without a
    publish time, or one pushed past the date by the articles of its second, has a key
    above it too)."""
    if parsed.since is None or not found:
        return found
    ids = [f.article_id for f in found]
    holds = set(
        conn.scalars(select(ARTICLES.c.id).where(ARTICLES.c.id.in_(ids), _since(parsed.since)))
    )
    return [f for f in found if f.article_id in holds]


def _ranged(parsed: Query) -> bool:
    """A term must be checked in order (several tokens, or a prefix) and every term can be
    looked up in the GIN index (a lone character cannot)."""
    terms = [t for clause in parsed.clauses for t in clause]
    return all(t.codes()[0] for t in terms) and any(t.positional for t in terms)


def _ranged_step(
    conn: Connection,
    parsed: Query,
    lowest: int | None,
    below: int | None,
    scored: bool,
    limit: int | None = None,
    keys: Sequence[int] | None = None,
) -> Select[Any]:
    """The candidates from the GIN index among the documents from `lowest` to `below`
    (doc_id; None: no bound) that pass the filters (or those at `keys`, candidates found
    already), the newest `limit` of them, newest first, as (doc_id, article_id, score,
    ok: a match); each one's codes read once (a fence: each term's ufa_hits computed
    once a row, for the check and the score alike)."""
    documents: Any
    if keys is not None:  # candidates already found (`_candidate_keys`)
        documents = select(*DOCS.c).where(DOCS.c.doc_id.in_(keys)).subquery("documents")
    else:
        documents = _pg_documents(conn, parsed, below=below, gin=True, lowest=lowest)
    if limit is not None:  # the keys sorted before any codes are read
        documents = select(documents).order_by(documents.c.doc_id.desc()).limit(limit).subquery()
    # A clause of one-token terms holds in every candidate (the GIN index found one of
    # them), so it is read only to be scored; a term of several tokens or a prefix is
    # checked in order.
    read = [scored or any(t.positional for t in clause) for clause in parsed.clauses]
    wanted = [t for clause, r in zip(parsed.clauses, read, strict=True) if r for t in clause]
    hits = [_term_hits(t, documents.c.vector, first_only=not scored) for t in wanted]
    misses = [_term_hits(t, documents.c.vector, first_only=True) for t in parsed.excluded]
    rows = (
        select(
            documents.c.doc_id,
            documents.c.article_id,
            *[h.label(f"h{n}") for n, h in enumerate(hits)],
            *[m.label(f"x{n}") for n, m in enumerate(misses)],
        )
        .offset(0)
        .subquery("candidates")
    )
    at = iter(range(len(wanted)))
    match = and_(
        true(),
        *[
            or_(*[rows.c[f"h{next(at)}"] > 0 for _ in clause])
            for clause, r in zip(parsed.clauses, read, strict=True)
            if r
        ],
        *[rows.c[f"x{n}"] == 0 for n in range(len(misses))],
    )
    score: ColumnElement[Any] = literal(None)
    if scored:  # (then every term was read)
        score = rows.c.h0
        for n in range(1, len(wanted)):
            score = score + rows.c[f"h{n}"]
    return select(
        rows.c.doc_id, rows.c.article_id, score.label("score"), match.label("ok")
    ).order_by(rows.c.doc_id.desc())


class FirstStep(NamedTuple):
    size: int  # documents (or keys) gone through first
    ranged: bool  # keys walked, the GIN index's candidates among them read
    share: float  # of the documents, expected to match
    documents: float  # in the index (the planner's count)
    # no keys walked: the keys of the GIN index's candidates (newest first), read in turn
    keys: list[int] | None = None

    @property
    def whole(self) -> bool:
        return self.keys is not None


def _first_step(
    conn: Connection, parsed: Query, wanted: int, most: int, scored: bool = False
) -> FirstStep | None:
    """How many of the newest documents that pass the filters `_pg_probe` goes through
    first, from the share of documents expected to match (`_text_share`), and whether its
    steps are `_ranged` (keys walked, the GIN index's candidates among them read) rather
    than walks that read every document; None when the GIN index alone is the better way
    (a rare query) or there are no statistics."""
    documents = _documents(conn) or 0.0
    share = _text_share(conn, parsed) if documents > 0 else None
    if not share:
        return None
    expected = share * float(documents)
    probe = math.ceil(wanted / share)
    # Costs in reads of a document's codes out of TOAST. So does each GIN candidate of a
    # term of several tokens or a prefix (checked in order), while a match of one token
    # comes from the index alone, about a tenth of that (bench/search.py). Relevance reads
    # the matches it ranks once more, unless a ranged step scored them as it read them.
    terms = [term for clause in parsed.clauses for term in clause]
    positional = any(term.positional for term in terms)
    rescored = wanted if scored else 0
    gin = (expected if positional else expected / GIN_MATCH_SHARE) + rescored
    # One site's newest entries come off an index, and since: only shortens the walk;
    # other filters are tested on the way down, past documents that fail them.
    walked = probe
    if _has_filters(parsed) and (len(parsed.sites) > 1 or parsed.not_sites or parsed.fields
                                 or parsed.until or parsed.statuses or parsed.not_statuses
                                 or parsed.changed is not None):  # fmt: skip
        filtered = _planned_rows(conn, select(literal(1)).select_from(_pg_documents(conn, parsed)))
        walked = math.ceil(probe * float(documents) / max(filtered, 1.0))
    # The first step's margin narrows as more matches are wanted (three standard
    # deviations of a binomial count, and 10 % for the estimate): relevance's 2,000 of a
    # word in 99 % of the articles read 2,350 documents, not 3,030, before being scored.
    first = math.ceil(probe * min(PROBE_MARGIN, 1.1 + 3 / math.sqrt(wanted)))
    # (a walk that would end near `most` would often end past it, its work thrown away)
    options: list[tuple[float, bool]] = []
    if first <= most:
        options.append((probe + (walked - probe) / WALK_SHARE + rescored, False))
    if all(term.codes()[0] for term in terms) and first <= most * KEY_SHARE:
        # keys walked, every code's postings turned into a bitmap, the candidates read
        # only to check a phrase, score or exclude
        reads = wanted * READ_MARGIN if positional or scored or parsed.excluded else 0
        options.append((walked / KEY_SHARE + expected / POSTING_SHARE + reads, True))
    if not options:
        return None
    cost, ranged = min(options)
    if cost >= gin:
        return None
    # A phrase expected as rarely as this may be far rarer than its rarest bigram (across
    # two words: "了上活创" has 979 candidates and 387 matches in 1M articles, where its
    # rarest bigram promised 5,000): the GIN index answers alone if it holds fewer
    # candidates than the steps would cost (`_candidate_keys`): they are read newest first,
    # as many as needed ("了上活创": 387 of its 979 candidates match, 150 read for 60).
    if ranged and positional and share <= CHECK_SHARE:
        keys = _candidate_keys(conn, parsed, wanted, documents)
        if keys is not None:
            return FirstStep(0, True, share, documents, keys)
    if ranged and first * (RANGED_WIDTH - 1) * share < expected / POSTING_SHARE:
        # Each step makes the codes' GIN bitmap again: a first step wide enough for a word
        # rarer than its rarest bigram says spares a second where the extra candidates in
        # its keys, each read once to recheck it, cost less than that bitmap (a page's,
        # not relevance's window: 风险 since a date, 30,666 keys, 252 ms against 83).
        first = min(first * RANGED_WIDTH, most * KEY_SHARE)
    return FirstStep(first, ranged, share, documents)


def _candidate_keys(
    conn: Connection, parsed: Query, wanted: int, documents: float
) -> list[int] | None:
    """The keys of a phrase's GIN candidates, newest first, if they are few enough to be
    read in turn without walking keys, rather than in ranged steps, which walk about
    wanted x documents / C keys for C candidates: C below sqrt(wanted x documents x
    WHOLE_SHARE / KEY_SHARE) (taking a candidate's key costs about a WHOLE_SHARE-th of
    reading a document). None if there are more.

    A page wants at least KEYS_WANTED here: the probe asks for a page and a few more now,
    and goes on while copies leave it short; the cap for those few (3,163 at 1M) sent
    "欢迎专业" (3,806 candidates) to ranged steps, 29 -> 51 ms."""
    wanted = max(wanted, KEYS_WANTED)
    cap = math.ceil(math.sqrt(wanted * documents * WHOLE_SHARE / KEY_SHARE))
    keys = _pg_documents(conn, parsed, gin=True, keys_only=True)
    capped = select(keys.c.doc_id).limit(cap).subquery()
    with _gin_plan(conn):  # (in one array: 3,806 rows took 10 ms to fetch one by one)
        found = conn.scalar(select(func.array_agg(capped.c.doc_id))) or []
    return sorted(found, reverse=True) if len(found) < cap else None


def _documents(conn: Connection) -> float | None:
    """The planner's count of index entries (PostgreSQL; -1 before the first ANALYZE)."""
    return cast(
        float | None,
        conn.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'search_docs'::regclass")),
    )


def _text_share(conn: Connection, parsed: Query) -> float | None:
    """The share of documents the query's words are expected in, from the frequencies of
    the most common codes ANALYZE keeps (pg_stats), None before there are any.

    PostgreSQL's own estimate multiplies the shares of a phrase's bigrams as if they were
    independent, but the bigrams of a word come together: 定市侨联 is in 19 % of the
    bench's articles, each of its three bigrams in 19-25 %, and the planner expected
    0.8 %, so it took the GIN plan and read 38,000 entries (553 ms). Here a phrase is
    expected as often as its rarest bigram, a prefix as its codes together, terms of
    an OR add up and clauses multiply (as the planner does); a token that ANALYZE did
    not find among the most common is taken as rare (the planner's rule: 0.5 % at most)."""
    stats = _code_shares(conn)
    if stats is None:
        return None
    shares, rare = stats

    def term(t: Term) -> float:
        codes, prefix = t.codes()
        found = [shares.get(code, rare) for code in codes]
        if prefix:
            low, high, closing = prefix
            together = sum(f for x, f in shares.items() if low <= x <= high or x == closing)
            found.append(min(1.0, together or rare))
        return min(found)

    share = 1.0
    for clause in parsed.clauses:
        share *= min(1.0, sum(term(t) for t in clause))
    for t in parsed.excluded:
        share *= 1.0 - term(t)
    return share


def _code_shares(conn: Connection) -> tuple[dict[int, float], float] | None:
    """{code: share of documents} of the most common codes, and the share taken for
    any other; read again after STATS_SECONDS (10,000 of them take a few ms to read, and
    ANALYZE changes them only now and then)."""
    key = conn.engine.url.render_as_string(hide_password=True)
    held = _STATS.get(key)
    if held and monotonic() - held[0] < STATS_SECONDS:
        return held[1]
    stats = _read_code_shares(conn)
    if stats is not None:  # (none before the first ANALYZE: asked again next time)
        _STATS[key] = (monotonic(), stats)
    return stats


def _read_code_shares(conn: Connection) -> tuple[dict[int, float], float] | None:
    """`_code_shares` as pg_stats has them now."""
    row = conn.execute(
        text(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
            " WHERE schemaname = current_schema() AND tablename = 'search_docs'"
            " AND attname = 'vector'"
        )
    ).first()
    if row is None or not row[0] or not row[1]:
        return None
    codes = [int(code) for code in row[0]]
    freqs: list[float] = row[1]
    shares = dict(zip(codes, freqs, strict=False))  # then the least and the most
    return shares, min(0.005, freqs[len(codes)] / 2)


STATS_SECONDS = 60.0
_STATS: dict[str, tuple[float, tuple[dict[int, float], float]]] = {}


def _planned_rows(conn: Connection, query: Select[Any]) -> float:
    """The planner's estimate of the rows of a query (one EXPLAIN, nothing run)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}").scalar()
    return float(plan[0]["Plan"]["Plan Rows"]) if plan else 0.0


def _page(
    rows: Sequence[Any], offset: int, limit: int, all_copies: bool
) -> list[tuple[int, float | None]]:
    """One hit a cluster (the first of its rows), then the page asked for."""
    groups: dict[int, tuple[int, float | None]] = {}
    for article_id, cluster_id, score in rows:
        group = -article_id if all_copies or cluster_id is None else cluster_id
        if group not in groups:
            groups[group] = (article_id, None if score is None else float(score))
    return list(groups.values())[offset : offset + limit]


def _hits(conn: Connection, parsed: Query, found: list[tuple[int, float | None]]) -> list[Hit]:
    from archive.export import Filters, record_query, to_record

    if not found:
        return []
    ids = [article_id for article_id, _ in found]
    rows = {row.id: row for row in conn.execute(record_query(Filters(article_ids=tuple(ids))))}
    clusters = {row.cluster_id for row in rows.values() if row.cluster_id}
    sizes = (
        dict(
            conn.execute(
                select(CLUSTERS.c.id, CLUSTERS.c.size).where(CLUSTERS.c.id.in_(clusters))
            ).all()
        )
        if clusters
        else {}
    )
    hits = []
    for article_id, score in found:
        row = rows[article_id]
        record = to_record(row._mapping)
        body = record.pop("body") or ""
        hits.append(
            Hit(
                record=record,
                snippet=snippet(body, parsed.raw_terms),
                score=None if score is None else round(abs(score), 6),  # FTS5's bm25 is negative
                republications=max(0, sizes.get(row.cluster_id, 1) - 1),
            )
        )
    return hits


# --- snippets ----------------------------------------------------------------------------------


def _display_form(body: str) -> tuple[str, str]:
    """(text to show, its normalised form of the same length, to find the terms in)."""
    shown = PINYIN_LEAK.sub("", body)
    folded = to_simplified(nfkc(shown)).lower()
    if len(folded) != len(shown):  # NFKC or t2s changed the length: show the folded text
        shown = folded
    return shown, folded


def snippet(body: str, raw_terms: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of the body around the first match, HTML-escaped, each
    match in <mark>...</mark>; the body's opening when nothing is found verbatim."""
    needles = sorted(
        {n for raw in raw_terms if (n := normalize(raw).strip())}, key=len, reverse=True
    )
    text = body.replace("\n", " ")
    # Folding a whole body (t2s) took most of a search's time; most pages are simplified,
    # so look for the terms in the text as it is first and fold only the window shown.
    plain = text.lower()
    first = min((i for n in needles if (i := plain.find(n)) >= 0), default=-1)
    if first < 0:
        shown, folded = _display_form(text)
        first = min((i for n in needles if (i := folded.find(n)) >= 0), default=0)
    else:
        shown = text
    begin = max(0, min(first - width // 4, len(shown) - width))
    window, folded = _display_form(shown[begin : begin + width])
    spans: list[tuple[int, int]] = []
    for needle in needles:
        start = folded.find(needle)
        while start >= 0:
            if not any(a < start + len(needle) and start < b for a, b in spans):
                spans.append((start, start + len(needle)))
            start = folded.find(needle, start + len(needle))
    spans.sort()
    out, at = [], 0
    for a, b in spans:
        out += [html.escape(window[at:a]), "<mark>", html.escape(window[a:b]), "</mark>"]
        at = b
    out.append(html.escape(window[at:]))
    end = begin + width
    return ("…" if begin > 0 else "") + "".join(out) + ("…" if end < len(shown) else "")


# --- rebuilding ----------------------------------------------------------------------------------


def entry_texts(items: Sequence[Indexable], vector: bool = False) -> list[Entry]:
    """entry_text over a batch; picklable, for a worker process."""
    return [entry_text(item, vector) for item in items]


def rebuild_index(
    session: Session,
    batch: int = 1000,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> int:
    """Empty the index and index every article's current version again, oldest first.

    With `workers`, the next batches are tokenised in worker processes while this one is
    written, so both cores work (bench/search.py).

    SQLite: in the session's transaction. PostgreSQL: the session's transaction is
    committed first (a lock it held on search_docs would stop the rebuild's connections
    for good), then the rebuild works in transactions and connections of its own, so
    that both cores can build the GIN index: the entries are written, ANALYZEd and
    committed in one (a failure there leaves the index as it was), then the GIN index's
    two halves (`GIN_HALVES`) are built at once, from two connections, then the common
    codes are counted. Until the halves are built a search reads every entry (slowly); if
    they never were (the process was killed), `build_gin_halves` builds them (`ufarchive
    db upgrade` and the next rebuild do). `on_step` is told each step after the entries.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.commit()
        return _pg_rebuild(bind.engine, batch, workers, on_progress, on_step)
    conn = session.connection()
    # fewer, bigger segments while building, one at the end (bench/search.py)
    clear_index(session)
    _fts_config(conn, ("hashsize", FTS_HASHSIZE), ("automerge", 16), ("crisismerge", 64))
    keys = _rebuild_keys()

    def write(items: list[Indexable], texts: list[Entry]) -> None:
        write_entries(conn, list(zip(items, texts, strict=True)), keys(items))

    done = _tokenised(conn, _rebuild_ids(conn), batch, workers, entry_texts, write, on_progress)
    _fts_config(conn, ("automerge", 4), ("crisismerge", 16))  # FTS5's defaults again
    conn.execute(text("INSERT INTO search_fts (search_fts) VALUES ('optimize')"))
    return done


def _pg_rebuild(
    engine: Engine,
    batch: int,
    workers: int,
    on_progress: Callable[[int, int], None] | None,
    on_step: Callable[[str], None] | None,
) -> int:
    step = on_step or (lambda _: None)
    with engine.begin() as conn:
        # Emptied rather than deleted from: the GIN build and ANALYZE below then read only
        # the new rows, not the old ones' dead tuples too (50,000 articles: 72 -> 40 s).
        # The table is locked against searches until this transaction ends (TRUNCATE).
        conn.execute(text("TRUNCATE search_docs"))  # and its code counts (migration 0021)
        # the GIN index built once at the end is far quicker than an insert at a time
        for name in GIN_HALVES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        # no code is common while the entries are written (the triggers count nothing);
        # those common at the end are counted then, from the GIN index
        conn.execute(COMMON.delete())
        conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {_STAGING} (LIKE search_docs INCLUDING STORAGE)"
                " ON COMMIT DROP"
            )
        )
        keys = _rebuild_keys()
        ids = _rebuild_ids(conn)
        counter = _common_candidates(conn, ids, step)
        counts = np.zeros(len(counter), dtype=np.int64)

        def write(items: list[Indexable], made: CountedCopies) -> None:
            _copy_entries(conn, items, made.copies, keys(items))
            if made.counts is not None:
                counts[:] += made.counts

        make = partial(counted_copies, counter=counter if len(counter) else None)
        done = _tokenised(conn, ids, batch, workers, make, write, on_progress)
        # the statistics that plan searches and choose how a common word is searched
        # (_text_share), there for the searches made before the GIN index is
        step("analysing the entries")
        conn.execute(text("ANALYZE search_docs"))
        # kept before the entries are committed: from then on the triggers count them
        step(f"keeping the counts of the common character pairs ({len(counter):,} counted)")
        _keep_counted(conn, counter.codes, counts, done)
    step("building the GIN index (its two halves at once)")
    build_gin_halves(engine)
    step("counting the common character pairs the sample missed")
    with engine.begin() as conn:
        refresh_common_codes(conn, parallel=True)
    return done


# Articles tokenised first, at random, to find the codes a rebuild counts as it goes
# (archive.code_counts): at 1,000,000 articles, 5,508 codes to count (bench/README.md), and
# a code held by 5 % of the entries (COMMON_DOCS of them) is missed only if the sample
# holds it less than half as often, some 8 standard deviations off.
COUNT_SAMPLE = 5_000
COUNT_SHARE = 0.5  # of the share of entries that makes a code common, in the sample
COUNTED_MOST = 10_000  # codes counted at most (the sample's most frequent)


def _common_candidates(
    conn: Connection, ids: Sequence[int], step: Callable[[str], None]
) -> CodeCounter:
    """The codes a rebuild of `ids` counts as it goes: those a sample of them holds often
    enough to be common; none when there are too few articles for any to be."""
    if len(ids) < COMMON_DOCS:
        return CodeCounter([])
    sample = random.Random(len(ids)).sample(list(ids), min(COUNT_SAMPLE, len(ids)))
    step(f"finding the codes to count in {len(sample):,} articles taken at random")
    arrays = entry_arrays(current_items(conn, sample))
    return CodeCounter(sample_candidates(arrays, len(ids), COMMON_DOCS, COUNT_SHARE, COUNTED_MOST))


def _keep_counted(conn: Connection, codes: np.ndarray, counts: np.ndarray, documents: int) -> None:
    """Keep the counts of the counted codes that are common: in COMMON_DOCS entries or
    more, or taken to be by ANALYZE's figures (as `refresh_common_codes` would); the
    others, kept nowhere, are as the GIN index counts them."""
    common = _common_shares(conn, documents)
    kept = [
        (int(code), int(docs))
        for code, docs in zip(codes.tolist(), counts.tolist(), strict=True)
        if docs >= COMMON_DOCS or code in common
    ]
    if kept:
        conn.execute(COMMON.insert(), [{"code": c} for c, _ in kept])
        conn.execute(COUNTS.insert(), [{"code": c, "docs": n} for c, n in kept])


# A COPY into a table emptied in its transaction (TRUNCATE) skips the free space map: each
# row's TOAST chunks go after the last, and the space a short last chunk leaves on a page
# stays empty (+232 MB at 1M, 3.8 %). So a batch is copied into a temporary table (no
# WAL) and moved by INSERT, which fills those gaps: 15-27 us an entry more than copying
# straight in (bench/search.py).
_STAGING = "ufa_rebuild_entries"
_MOVE_ENTRIES = text(
    f"INSERT INTO search_docs ({_COLUMNS}) SELECT {_COLUMNS} FROM {_STAGING}; TRUNCATE {_STAGING}"
)
# an entry's row in COPY's binary form (archive.db.copy_binary): int4, int8, int4, int4
# and the int4[], each after its length
_COPY_ROW = struct.Struct("!hiiiqiiiii")


def _copy_entries(
    conn: Connection, items: Sequence[Indexable], copies: Sequence[bytes], keys: dict[int, int]
) -> None:
    """A rebuild's entries into search_docs by one binary COPY (PostgreSQL; through a
    temporary table, `_STAGING`): no text made or parsed (`codes_binary`), no statement
    a row; the count triggers fire once. The batch's entries of each GIN half go in
    together: a half's postings then point into runs of the table's pages, not every
    page, and compress like one index's (at 100,000 articles the halves took 293 MB so,
    319 MB interleaved, one whole index 264)."""
    rows = sorted(
        ((keys[item.article_id], item, codes) for item, codes in zip(items, copies, strict=True)),
        key=lambda row: (row[0] & 1, row[0]),  # each half together, in key order
    )
    _copy_rows(conn, _STAGING, rows)
    conn.execute(_MOVE_ENTRIES)  # (a table made in this transaction is truncated in place)


def _copy_rows(conn: Connection, table: str, rows: Sequence[tuple[int, Indexable, bytes]]) -> None:
    """Index entries, (key, article, `codes_binary`) in the order given, into a table like
    search_docs, by one binary COPY."""
    data = bytearray()
    for key, item, codes in rows:
        fields = (item.article_id, 8, key, 4, item.version, 4, item.site_id, len(codes))
        data += _COPY_ROW.pack(5, 4, *fields)
        data += codes
    copy_binary(conn, table, _COLUMNS, data)


def build_gin_halves(engine: Engine) -> list[str]:
    """Build the halves of the GIN index (`GIN_HALVES`) that search_docs lacks, at once, each
    from a connection of its own (PostgreSQL 15 builds one index on one core); their
    names. Interrupted, it cancels the builds (each rolls back: no half-built index)."""
    with engine.connect() as conn:
        present = set(
            conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'search_docs'"))
        )
    missing = [half for half, name in enumerate(GIN_HALVES) if name not in present]
    building: list[Any] = []

    def build(half: int) -> None:
        with engine.connect() as conn:
            building.append(conn.connection.driver_connection)
            conn.execute(text(gin_half_sql(half)))
            conn.commit()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(build, half) for half in missing]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for raw in building:
                raw.cancel()
            raise
    return [GIN_HALVES[half] for half in missing]


_T = TypeVar("_T")


def _rebuild_keys() -> Callable[[Sequence[Indexable]], dict[int, int]]:
    """Order keys for a rebuild, whose articles come in time order (then keys only grow:
    FTS5 appends instead of flushing its buffer at every step back, 1.7x faster): each
    article its time's key, or the one after the last given; no lookups."""
    last: int | None = None

    def keys(items: Sequence[Indexable]) -> dict[int, int]:
        nonlocal last
        given = {}
        for item in sorted(items, key=lambda i: (i.when, i.article_id)):
            key = order_key(item.when)
            last = key if last is None or key > last else last + 1
            given[item.article_id] = last
        return given

    return keys


def _rebuild_ids(conn: Connection) -> list[int]:
    """Every article, oldest first (a rebuild's order: `_rebuild_keys`)."""
    when = func.coalesce(ARTICLES.c.publish_time, ARTICLES.c.first_seen)
    return list(conn.scalars(select(ARTICLES.c.id).order_by(when, ARTICLES.c.id)))


def _tokenised(
    conn: Connection,
    ids: list[int],
    batch: int,
    workers: int,
    make: Callable[[list[Indexable]], _T],
    write: Callable[[list[Indexable], _T], None],
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """The current version of the articles `ids`, in that order, `batch` at a time: `make`
    (entries, tokenised in `workers` processes while the batch before is written) and
    `write`; the articles done."""
    batches = [ids[start : start + batch] for start in range(0, len(ids), batch)]
    done = 0

    def written(items: list[Indexable], entries: _T) -> None:
        nonlocal done
        write(items, entries)
        done += len(items)
        if on_progress:
            on_progress(done, len(ids))

    if workers < 1 or len(batches) < 2:
        for chunk in batches:
            items = current_items(conn, chunk)
            written(items, make(items))
        return done
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[list[Indexable], Future[_T]]] = deque()
        for chunk in batches:
            items = current_items(conn, chunk)
            pending.append((items, pool.submit(make, items)))
            if len(pending) > workers:
                written(*_ready(pending))
        while pending:
            written(*_ready(pending))
    return done


def _ready(
    pending: deque[tuple[list[Indexable], Future[_T]]],
) -> tuple[list[Indexable], _T]:
    items, future = pending.popleft()
    return items, future.result()


def _fts_config(conn: Connection, *options: tuple[str, int]) -> None:
    for name, value in options:
        conn.execute(
            text("INSERT INTO search_fts (search_fts, rank) VALUES (:name, :value)"),
            {"name": name, "value": value},
        )
