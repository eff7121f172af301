"""dates.py: every common way Chinese pages write a date, to ISO 8601 with an offset."""

from __future__ import annotations

import pytest

from crawler.extract.dates import find_dates, from_timestamp, parse_date


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-02-07 10:29:35", "2024-02-07T10:29:35+08:00"),
        ("2024-02-07 10:29", "2024-02-07T10:29:00+08:00"),
        ("2024-2-7 9:05:12", "2024-02-07T09:05:12+08:00"),
        ("2024年02月07日 10:29", "2024-02-07T10:29:00+08:00"),
        ("2024年2月7日10:29", "2024-02-07T10:29:00+08:00"),
        ("2024年02月07日 10时29分", "2024-02-07T10:29:00+08:00"),
        ("2024年2月7日 下午3:20", "2024-02-07T15:20:00+08:00"),
        ("2024/2/7", "2024-02-07T00:00:00+08:00"),
        ("2024/02/07 10:29:35", "2024-02-07T10:29:35+08:00"),
        ("2024.02.07", "2024-02-07T00:00:00+08:00"),
        ("2024-02-07", "2024-02-07T00:00:00+08:00"),
        ("2024年2月7日", "2024-02-07T00:00:00+08:00"),
        ("二〇二四年二月十七日", "2024-02-17T00:00:00+08:00"),
        ("2024 07/22 08:21:34", "2024-07-22T08:21:34+08:00"),  # news.cn's split header clock
        ("2024-09-23 09:44:54 HKT", "2024-09-23T09:44:54+08:00"),
        ("2024-02-07T10:29:35+08:00", "2024-02-07T10:29:35+08:00"),
        ("2024-02-07T10:29:35.000+0800", "2024-02-07T10:29:35+08:00"),
        ("2024-02-07T02:29:35Z", "2024-02-07T02:29:35+00:00"),
        ("2024-02-07T10:29:35-05:00", "2024-02-07T10:29:35-05:00"),
        ("2024-02-07 10:29 GMT+8", "2024-02-07T10:29:00+08:00"),
        ("发布时间：2024-02-07 10:29:35 来源：新华网", "2024-02-07T10:29:35+08:00"),
    ],
)
def test_formats(text: str, iso: str) -> None:
    assert parse_date(text) == iso


@pytest.mark.parametrize(
    "text",
    [
        "6月5日，召开主题教育动员会",  # a caption date has no year
        "Copyright 2013-2021 All Rights Reserved",  # a copyright range has no day
        "总机：0355-5921114",
        "2024-13-01",
        "2023-02-29",
        "第2024期",
        "20240207",  # compact dates only where machines write them
    ],
)
def test_not_dates(text: str) -> None:
    assert parse_date(text) is None


def test_compact_dates_in_meta_and_urls() -> None:
    assert parse_date("20240207", compact=True) == "2024-02-07T00:00:00+08:00"
    assert parse_date("20240207103000", compact=True) == "2024-02-07T10:30:00+08:00"


def test_precision_and_positions() -> None:
    first, second = find_dates("更新 2024-02-07 | 发布 2024年2月6日 08:15")
    assert (first.day, first.precision) == ((2024, 2, 7), 0)
    assert (second.iso, second.precision) == ("2024-02-06T08:15:00+08:00", 1)
    assert first.end <= second.start
    assert find_dates("2024-02-07 10:29:35")[0].precision == 2


def test_unix_timestamps_are_beijing_time() -> None:
    assert from_timestamp(1686288240) == "2023-06-09T13:24:00+08:00"  # WeChat's var ct
    assert from_timestamp(10**15) is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        # a weekday between the date and the time keeps the minute (hard-time-01)
        ("2024年05月20日 星期一 14:32", "2024-05-20T14:32:00+08:00"),
        ("2024-05-20 周一 09:05", "2024-05-20T09:05:00+08:00"),
        # 12-hour clocks (hard-time-03, -04)
        ("2024/05/22 下午 03:15", "2024-05-22T15:15:00+08:00"),
        ("2024-05-20 8:41:10 PM", "2024-05-20T20:41:10+08:00"),
        ("2024-05-20 8:41 p.m.", "2024-05-20T20:41:00+08:00"),
        ("2024-05-20 12:05 AM", "2024-05-20T00:05:00+08:00"),
        ("2024-05-20 12:05 PM", "2024-05-20T12:05:00+08:00"),
        ("2024年5月20日 上午 9:30", "2024-05-20T09:30:00+08:00"),
        ("2024年5月20日 中午1:10", "2024-05-20T13:10:00+08:00"),
        ("2024年5月20日 晚上8:00", "2024-05-20T20:00:00+08:00"),
        # odd spacing: digits one by one, spaced slashes and colons (hard-time-05, -07)
        ("2 0 2 4 - 0 5 - 1 8  1 0 : 2 6", "2024-05-18T10:26:00+08:00"),
        ("2024 / 05 / 19  16 : 40", "2024-05-19T16:40:00+08:00"),
    ],
)
def test_round_two_formats(text: str, iso: str) -> None:
    assert parse_date(text) == iso


def test_year_less_dates_need_a_year_and_a_time() -> None:
    assert find_dates("05-20 14:32") == []  # no year known: not a date at all
    (date,) = find_dates("发布时间：05-20 14:32", year=2024)
    assert date.iso == "2024-05-20T14:32:00+08:00" and date.start == 5
    assert find_dates("5月20日 14:32", year=2023)[0].iso == "2023-05-20T14:32:00+08:00"
    assert find_dates("05/20 16:00", year=2024)[0].iso == "2024-05-20T16:00:00+08:00"
    # a caption's day without a time stays out, and a full date is never re-read
    assert find_dates("6月5日，调研组来到村里", year=2024) == []
    assert find_dates("2023-05-20 14:32", year=2024)[0].iso.startswith("2023")


def test_spaced_digits_keep_their_place_in_the_line() -> None:
    text = "时间：2 0 2 4 - 0 5 - 1 8 来源"
    (date,) = find_dates(text)
    assert text[date.start : date.end].replace(" ", "") == "2024-05-18"
