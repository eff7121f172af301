"""Labelled metadata lines: several labels on one line, colons and spaces of both widths."""

from __future__ import annotations

import pytest

from crawler.extract.metadata import (
    clean_names,
    clean_source,
    contributor_of_line,
    is_metadata_line,
    parse_pairs,
)


def fields(line: str) -> dict[str, str]:
    return {p.field: p.value for p in parse_pairs(line) if p.field != "other"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("来源：中国统一战线杂志 时间：2023-05-08 10:08:31", {"source": "中国统一战线杂志"}),
        ("来源:中國統一戰線雜誌時間:2023-07-17 07:15:05點擊:次", {"source": "中國統一戰線雜誌"}),
        ("发布日期：2024-02-28 13:40信息来源：市委统战部浏览次数：2733", {"source": "市委统战部"}),
        ("稿源：泉州晚报  发布时间：2023-9-27 22:18:01", {"source": "泉州晚报"}),
        ("出处：铜陵市委统战部   日期：2023/1/6", {"source": "铜陵市委统战部"}),
        ("来源 ： 人民日报", {"source": "人民日报"}),
        ("來源︰香港商報", {"source": "香港商報"}),
        (
            "来源：中国侨联　|　时间：2023-03-04　|　编辑：严勇",
            {"source": "中国侨联", "editor": "严勇"},
        ),
        (
            "作者：莫德胜　　来源：人民政协报　　2023年12月24日 07:53",
            {"author": "莫德胜", "source": "人民政协报"},
        ),
        ("作者：叶晓雯 钟军字号：大 中 小", {"author": "叶晓雯 钟军"}),
        (
            "2023-08-23 13:19:57 來源：香港文匯報 記者 鄭衞國",
            {"source": "香港文匯報", "author": "鄭衞國"},
        ),
        ("文｜邵光明", {"author": "邵光明"}),
        ("文/张三", {"author": "张三"}),
        ("编辑丨罗秀英 审核丨龙鹏", {"editor": "罗秀英"}),
        ("编辑：梁桂兰　审核：钟晓东", {"editor": "梁桂兰"}),
        ("供稿：北海市侨联　编辑：彭嘉怡", {"contributor": "北海市侨联", "editor": "彭嘉怡"}),
        ("(责编：梁晨曦、武雨桐)", {"editor": "梁晨曦 武雨桐"}),
        ("【责任编辑:莫丽娟 】", {"editor": "莫丽娟"}),
        ("【编辑:谭婷 武光明】", {"editor": "谭婷 武光明"}),
        ("责任编辑：朱俊杰\u3000韩春燕", {"editor": "朱俊杰 韩春燕"}),
        ("责任编辑：龚子涵，赵亚楠", {"editor": "龚子涵 赵亚楠"}),
    ],
)
def test_pairs(line: str, expected: dict[str, str]) -> None:
    got = fields(line)
    assert {k: got[k] for k in expected} == expected
    assert not {"source", "editor", "author", "contributor"} - set(expected) & set(got)


def test_time_values_keep_the_whole_date() -> None:
    (pair,) = [
        p
        for p in parse_pairs("发布时间：2024年02月07日 10:29 来源：新华网")
        if p.field == "publish_time"
    ]
    assert pair.value.startswith("2024年02月07日 10:29")


@pytest.mark.parametrize(
    "line",
    [
        "全文：统一战线是党克敌制胜的重要法宝",  # 全文 is not 文
        "中新社记者 蔡晓东 摄",  # a photo credit, not a byline
        "优秀调研成果作者分享了经验体会。",
    ],
)
def test_no_label_in_prose(line: str) -> None:
    assert fields(line).keys() <= {"other"}


@pytest.mark.parametrize(
    ("line", "meta"),
    [
        ("责任编辑：石建军", True),
        ("【责编：黎琳】", True),
        ("2024年02月23日 21:08　来源：中国侨网", True),
        ("编辑：梁桂兰  审核：钟晓东", True),
        (
            "培训期间，有关专家围绕调研选题、报告撰写等内容进行了授课，优秀调研成果作者分享了经验体会。",
            False,
        ),
        ("一、紧扣主题主线，凝聚共识走深走实", False),
    ],
)
def test_metadata_lines(line: str, meta: bool) -> None:
    assert is_metadata_line(line) is meta


@pytest.mark.parametrize(
    ("line", "who"),
    [
        ("（安徽省铜陵市委统战部 供稿）", "安徽省铜陵市委统战部"),
        ("(安徽省銅陵市委統戰部 供稿)", "安徽省銅陵市委統戰部"),
        ("（秭归县委统战部供稿）", "秭归县委统战部"),
        ("本文由某某供稿，特此感谢各位读者长期以来的关注和支持，欢迎继续来稿。", None),
    ],
)
def test_contributor_lines(line: str, who: str | None) -> None:
    assert contributor_of_line(line) == who


def test_names_and_sources_are_cleaned() -> None:
    assert clean_names("梁晨曦 武雨桐") == "梁晨曦、武雨桐"
    assert clean_names("龚子涵，赵亚楠") == "龚子涵、赵亚楠"
    assert clean_source("人民日报 2024-02-07 10:29") == "人民日报"
    assert clean_source("【中国侨网】") == "中国侨网"
