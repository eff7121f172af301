"""Dates in page text -> ISO 8601 with an offset (+08:00 when the page gives none).

Owns the date formats only; which date on a page is the publication date is decided in
metadata.py. A date needs a year: `6月5日` in a photo caption is never a publication date,
and neither is a copyright range like `2013-2021` (it has no day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

#: A weekday next to a date: 星期三, 周三, 週三, 礼拜三.
WEEKDAY = r"(?:星期|周|週|礼拜|禮拜)[一二三四五六日天]"

#: Chinese pages that state no offset mean Beijing time.
BEIJING = timezone(timedelta(hours=8), "CST")

# The time after a date. A weekday may stand between (2024年05月20日 星期一 14:32: the
# date alone would lose the minute, hard-time-01); 12-hour clocks are written 下午3:15,
# 下午 03:15 or 8:41:10 PM (hard-time-03, -04); a page may space its colons (14 : 32).
_TIME_BODY = r"""
        (?:\s*(?:星期|周|週|礼拜|禮拜)[一二三四五六日天])?
        (?:\s*[T日号號]\s*|\s+|(?<=[日号號]))?\s*
        (?P<ampm>上午|下午|早上|晚上|中午|凌晨|傍晚|AM|PM|am|pm)?\s*
        (?<!\d)(?P<H>[01]?\d|2[0-3])\s*[:：时時点點]\s*(?P<M>[0-5]\d)(?!\d)
        (?:\s*[:：分]\s*(?P<S>[0-5]\d)(?:[.,]\d{1,9})?(?!\d))?
        (?:\s*[分秒])?
        (?:\s*(?P<ampm2>[AaPp]\.?\s?[Mm]\.?)(?![A-Za-z]))?
        (?:\s*(?P<tz>
            Z(?![A-Za-z])
            | [+-](?:0?\d|1[0-4]):?[0-5]\d(?!\d)
            | (?:GMT|UTC)\s*(?:[+-]\s*\d{1,2}(?::?\d{2})?)?
            | HKT | CST | 北京时间 | 北京時間
        ))?
"""
_TIME = rf"(?:{_TIME_BODY})?"

# 2024-02-07, 2024年02月07日, 2024/2/7, 2024.02.07, with or without a time after it.
_NUMERIC = re.compile(
    r"""
    (?<![\d.])(?P<y>(?:19|20)\d{2})\s*(?:[-/.]|年)\s*(?P<m>0?[1-9]|1[0-2])\s*(?:[-/.]|月)\s*
    (?P<d>0?[1-9]|[12]\d|3[01])(?![\d])\s*(?:[日号號](?!\d))?
    """
    + _TIME,
    re.VERBOSE,
)

# news.cn writes its header clock as three spans: "2024" "07/22" "08:21:34".
_SPLIT_YEAR = re.compile(
    r"""
    (?<![\d/.-])(?P<y>20\d{2})\s+(?P<m>0?[1-9]|1[0-2])\s*/\s*(?P<d>0?[1-9]|[12]\d|3[01])(?![\d/])
    """
    + _TIME,
    re.VERBOSE,
)

# 05-20 14:32, 5月20日 14:32: no year, so only with a time and only when the caller knows
# the year (the URL's, <meta>'s): a caption's 6月5日 stays out (hard-time-02).
_NO_YEAR = re.compile(
    r"""
    (?<![\d/.年-])(?P<m>0?[1-9]|1[0-2])\s*(?:[-/.]|月)\s*(?P<d>0?[1-9]|[12]\d|3[01])(?![\d/.-])
    \s*(?:[日号號](?!\d))?
    """
    + _TIME_BODY,
    re.VERBOSE,
)

# 20240207 and 20240207103000: only in machine-written places (meta tags, URLs).
_COMPACT = re.compile(
    r"(?<!\d)(?P<y>(?:19|20)\d{2})(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])"
    r"(?:T?(?P<H>[01]\d|2[0-3])(?P<M>[0-5]\d)(?P<S>[0-5]\d)?)?(?!\d)"
)

# 二〇二四年二月七日: official documents date themselves in Chinese numerals.
_HANZI = re.compile(
    r"(?P<y>[〇○零一二三四五六七八九]{4})\s*年\s*(?P<m>十[一二]?|[一二三四五六七八九])\s*月\s*"
    r"(?P<d>三十一?|三十|二?十[一二三四五六七八九]?|[一二三四五六七八九])\s*[日号]"
)
_MAY_HOLD_A_DATE = re.compile(r"(?:19|20)\d\d|[〇○零][一二三四五六七八九〇○零]|二[〇○零]")
_HANZI_DIGITS = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"○": 0, "零": 0}


@dataclass(frozen=True)
class FoundDate:
    """One date found in a text: its ISO form and how much of a clock time it had."""

    iso: str
    day: tuple[int, int, int]
    precision: int  # 0: the date alone, 1: hours and minutes, 2: seconds too
    has_offset: bool
    start: int
    end: int


def find_dates(text: str, *, compact: bool = False, year: int | None = None) -> list[FoundDate]:
    """Every valid date in `text`, in order; `compact` also accepts 20240207 (meta, URLs);
    with `year`, a date-time without a year (`05-20 14:32`) is in that year."""
    found: list[FoundDate] = []
    if _MAY_HOLD_A_DATE.search(text):
        patterns = [_NUMERIC, _SPLIT_YEAR, _HANZI]
        if compact:
            patterns.append(_COMPACT)
        for pattern in patterns:
            for match in pattern.finditer(text):
                date = _to_date(match)
                if date is not None:
                    found.append(date)
    if not found and _SPACED_DIGITS.search(text):
        return _find_in_spaced(text, compact=compact, year=year)
    if year is not None and not found and _MAY_HOLD_A_TIME.search(text):
        for match in _NO_YEAR.finditer(text):
            date = _to_date(match, year)
            if date is not None:
                found.append(date)
    found.sort(key=lambda d: d.start)
    kept: list[FoundDate] = []
    for date in found:  # overlapping matches of two patterns: keep the first
        if not kept or date.start >= kept[-1].end:
            kept.append(date)
    return kept


# Digits a page spaces out one by one (`2 0 2 4 - 0 5 - 2 0`, number images' alt text).
_SPACED_DIGITS = re.compile(r"(?<!\d)\d(?: \d){3,}(?!\d)")
# One space between digits or a date's separators (2 0 2 4 - 0 5): closed up; a wider
# gap (between the date and the time) stays.
_SPACE_IN_NUMBERS = re.compile(r"(?<=[\d/:：.-]) (?=[\d/:：.-])")
_MAY_HOLD_A_TIME = re.compile(r"\d\s*[:：时時点點]\s*\d")


def may_hold_a_time(text: str) -> bool:
    """Whether `text` may hold a time of day: without one, `find_dates` reads it the same
    with a `year` as without."""
    return _MAY_HOLD_A_TIME.search(text) is not None


def _find_in_spaced(text: str, *, compact: bool, year: int | None) -> list[FoundDate]:
    """Dates in `text` once runs of spaced single digits are closed up; positions are
    mapped back to `text`."""
    kept: list[int] = []  # for each character of the closed-up text, its index in `text`
    closed: list[str] = []
    gaps = {m.start() for m in _SPACE_IN_NUMBERS.finditer(text)}
    for i, char in enumerate(text):
        if i not in gaps:
            kept.append(i)
            closed.append(char)
    kept.append(len(text))
    dates = find_dates("".join(closed), compact=compact, year=year)
    return [replace(d, start=kept[d.start], end=kept[d.end]) for d in dates]


def parse_date(text: str, *, compact: bool = False) -> str | None:
    """The first date in `text` as ISO 8601 with an offset, or None."""
    dates = find_dates(text, compact=compact)
    return dates[0].iso if dates else None


def from_timestamp(seconds: float) -> str | None:
    """A Unix timestamp (WeChat's `var ct`) as ISO 8601 in Beijing time."""
    try:
        when = datetime.fromtimestamp(seconds, BEIJING)
    except (OverflowError, OSError, ValueError):
        return None
    if not 1990 <= when.year <= 2099:
        return None
    return when.replace(microsecond=0).isoformat()


_AFTERNOON = frozenset({"下午", "晚上", "傍晚", "PM", "pm"})


def _to_date(match: re.Match[str], known_year: int | None = None) -> FoundDate | None:
    groups = match.groupdict()
    try:
        if match.re is _HANZI:
            year = int("".join(str(_HANZI_DIGITS[c]) for c in groups["y"]))
            month, day = _hanzi_number(groups["m"]), _hanzi_number(groups["d"])
        else:
            year = known_year if known_year is not None else int(groups["y"])
            month, day = int(groups["m"]), int(groups["d"])
        hour = int(groups["H"]) if groups.get("H") else 0
        minute = int(groups["M"]) if groups.get("M") else 0
        second = int(groups["S"]) if groups.get("S") else 0
        half = groups.get("ampm") or (groups.get("ampm2") or "").replace(".", "").replace(" ", "")
        if half.upper() in ("PM", "AM") and hour > 12:
            return None  # 13:05 PM is no 12-hour time
        if (half in _AFTERNOON or half.upper() == "PM") and hour < 12:
            hour += 12
        elif (half.upper() == "AM" or half == "凌晨") and hour == 12:
            hour = 0
        elif half == "中午" and hour < 6:
            hour += 12
        tz = _offset(groups.get("tz"))
        when = datetime(year, month, day, hour, minute, second, tzinfo=tz or BEIJING)
    except (KeyError, ValueError):
        return None
    if not 1990 <= year <= 2099:
        return None
    precision = 0 if not groups.get("H") else (2 if groups.get("S") else 1)
    return FoundDate(
        iso=when.isoformat(),
        day=(year, month, day),
        precision=precision,
        has_offset=tz is not None,
        start=match.start(),
        end=match.end(),
    )


def _hanzi_number(text: str) -> int:
    if "十" not in text:
        return _HANZI_DIGITS[text]
    tens, _, ones = text.partition("十")
    return (_HANZI_DIGITS[tens] if tens else 1) * 10 + (_HANZI_DIGITS[ones] if ones else 0)


def _offset(tz: str | None) -> timezone | None:
    """The offset a page states; HKT, CST and 北京时间 are all UTC+8."""
    if not tz:
        return None
    tz = tz.replace(" ", "")
    if tz == "Z":
        return UTC
    if tz in ("HKT", "CST", "北京时间", "北京時間"):
        return BEIJING
    if tz in ("GMT", "UTC"):
        return UTC
    match = re.fullmatch(r"(?:GMT|UTC)?([+-])(\d{1,2}):?(\d{2})?", tz)
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    if delta > timedelta(hours=14):
        return None
    return timezone(sign * delta)
