"""people.py: editors and authors as bylines write them, and what is never a person (issue 16)."""

from __future__ import annotations

import pytest

from crawler.extract.people import (
    clean_authors,
    clean_names,
    closing_credit,
    credit_names,
    dateline_credit,
    is_credit_line,
    is_person,
)


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("王芳 李明", "王芳、李明"),
        ("张三、李四", "张三、李四"),
        ("王　芳 李　明 欧阳文", "王芳、李明、欧阳文"),  # padded two-character names
        ("刘洋 chen_jing NBJ11279", "刘洋、chen_jing"),  # a handle is a name, a code is not
        ("赵六_NBJ11279", "赵六"),
        ("lixiaoyu", "lixiaoyu"),
        ("SN123", None),
        ('张三" target="_blank', "张三"),  # an attribute fragment from broken markup
    ],
)
def test_editor_lists(value: str, names: str | None) -> None:
    assert clean_names(value) == names


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("本报记者 张三 李四", "张三、李四"),
        ("特约评论员 王明", "王明"),
        ("专栏作者 林小华", "林小华"),
        ("新华社记者 赵明远", "赵明远"),
        ("記者 陳怡安", "陳怡安"),
        ("記者林小華／台北即時報導", "林小華"),
        ("县侨联", None),  # an organisation
        ("团结报", None),  # a newspaper
        ("人民网", None),  # a portal
        ("管理员", None),  # a CMS placeholder
        ("本站原创", None),
        ("返回首页", None),  # a UI word
        ("更多>>", None),
        ('class="author"', None),  # an HTML fragment
    ],
)
def test_authors(value: str, names: str | None) -> None:
    assert clean_authors(value) == names


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("新华社北京5月20日电（记者张三、李四）会议指出", "张三、李四"),
        ("新华社北京5月20日电（记者 王明 李华）", "王明、李华"),
        ("（記者張志豪／台北報導）國台辦", "張志豪"),
        ("（中央社記者王美玲台北2日電）海峽兩岸", "王美玲"),
        ("中央社記者歐陽明華盛頓2日電", "歐陽明"),
    ],
)
def test_dateline_credits(text: str, names: str) -> None:
    found = dateline_credit(text)
    assert found is not None and found[0] == names


def test_closing_credits_and_photo_credits() -> None:
    assert closing_credit("会议要求各地抓好落实。（记者 郑伟）") == ("郑伟", "记者 郑伟")
    assert is_credit_line("（本报记者 李四 王五）")
    assert not is_credit_line("会议要求各地抓好落实。（记者 郑伟）")
    # a photographer's credit names no author
    assert credit_names("座谈会现场（新华社记者 张立群 摄）") is None
    assert closing_credit("图为会议现场。（新华社记者 张立群 摄）") is None
    # the correspondent after the reporter is not an author
    assert credit_names("（记者 张三 通讯员 李四）") == ("张三", "记者 张三 ")


def test_what_is_a_person() -> None:
    assert is_person("张三") and is_person("欧阳明华") and is_person("Lin Wei")
    assert not is_person("统战部") and not is_person("台北") and not is_person("记者")
