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
