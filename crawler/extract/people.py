"""People's names in bylines: editors (责任编辑 lists) and authors (记者, 作者, 文/ ...).

Owns what a name looks like and what is never one: a role (记者, 特约评论员) is stripped,
a place (台北報導), a UI word (更多>>, 返回首页), an HTML fragment or an organisation,
newspaper or portal name (人民日报, 县侨联) is dropped. Also the reporter credits that carry
no `label：` (issue 16): `新华社北京5月20日电（记者张三、李四）`, `（記者張三／台北報導）`,
`中央社記者張三台北2日電`, a closing `（记者 张三）`. Imports only labels.
"""

from __future__ import annotations

import re

from crawler.extract import labels

NAME_SPLIT = re.compile(r"[\s、，,;；/／|]+")
_HAN = r"\u3400-\u9fff\uf900-\ufaff"
# A Chinese person's name: two to four Han characters, or a transliteration with ·.
_HAN_NAME = re.compile(rf"[{_HAN}]{{2,4}}|[{_HAN}]{{1,6}}[·•．][{_HAN}·•．]{{1,12}}")
# A romanised name (Lin Wei, John Smith) or a staff handle (wangli, chen_jing, li.na).
_LATIN_NAME = re.compile(r"[A-Za-z][A-Za-z'-]*(?: [A-Za-z][A-Za-z'-]*){0,3}")
_HANDLE = re.compile(r"[a-z][a-z0-9_.-]{2,30}", re.I)
# CMS staff codes: 163.com writes 责任编辑：赵六_NBJ11279; some write the code alone.
_STAFF_CODE_SUFFIX = re.compile(r"_[A-Za-z]{1,6}\d{2,}$")
_STAFF_CODE = re.compile(r"[A-Za-z]{0,6}\d{2,}[A-Za-z\d]*")
_ORG_END = re.compile(rf"(?:{labels.alternation(labels.ORG_SUFFIXES)})$")
_ROLES = sorted(set(labels.AUTHOR_ROLES), key=len, reverse=True)
_ROLE_PREFIX = re.compile(rf"^(?:{labels.alternation(labels.AUTHOR_ROLES)})\s*[:：]?\s*")
# A medium before a role: 新华社记者, 人民日报记者, 中央社記者, 本报特约评论员.
_MEDIUM_ROLE = re.compile(
    rf"^[{_HAN}]{{1,10}}?(?:{labels.alternation(labels.MEDIUM_SUFFIXES)})"
    rf"(?={labels.alternation(labels.AUTHOR_ROLES)})"
)
_UI = frozenset(
    labels.UI_WORDS + labels.NOT_PEOPLE + labels.ALL_LABELS + labels.SOURCE_PLACEHOLDERS
)
_ROLE_SET = frozenset(labels.AUTHOR_ROLES)
_NO_LETTERS = re.compile(r"[\d\W_]+")
_MARKUP = re.compile(r"[<>=\"'{}]|\b(?:class|style|href|span|div)\b", re.I)
_PLACE_END = re.compile(
    rf"(?:{labels.alternation(labels.DATELINE_PLACES)})$|[{_HAN}]{{2,3}}(?:{labels.alternation(labels.REPORT_ENDS)})$"
)
_PLACES = sorted(set(labels.DATELINE_PLACES), key=len, reverse=True)
_REPORT_END = re.compile(rf"(?:{labels.alternation(labels.REPORT_ENDS)})$")
# What ends the names after a role: another label (通讯员, 摄影), a closing bracket.
_NAMES_END = re.compile(
    rf"[)）\]】]|(?:{labels.alternation(('通讯员', '通訊員', '实习生', '實習生', '摄影', '攝影', '摄', '攝'))})"
)


# A two-character name padded to the width of three (王　芳, 李 明): government sites line
# up their editor lists so; read as one name, not two halves (hard-editor-01).
_PADDED = re.compile(rf"(?<![{_HAN}])([{_HAN}])[ \t\u3000\xa0\x1f]{{1,3}}([{_HAN}])(?![{_HAN}])")


# Quotes and brackets of markup that leaked into a byline: `张三" target="_blank`.
_QUOTES = "\"'<>"


def unpad(value: str) -> str:
    """`王　芳 李　明` -> `王芳 李明`."""
    return _PADDED.sub(r"\1\2", value)


def is_person(name: str) -> bool:
    """A name as a byline writes a person's: not an organisation, role, UI word or place."""
    if _MARKUP.search(name) or name in _UI or name in _ROLE_SET:
        return False
    if _HAN_NAME.fullmatch(name):
        return not _ORG_END.search(name) and not _PLACE_END.search(name)
    return bool(_LATIN_NAME.fullmatch(name)) and len(name) >= 3


def strip_role(token: str) -> str:
    """`本报记者张三` -> `张三`, `新华社记者 李四` -> `李四`: the role before a name goes."""
    token = _MEDIUM_ROLE.sub("", token)
    previous = None
    while previous != token:
        previous = token
        token = _ROLE_PREFIX.sub("", token)
    return token


def clean_names(value: str) -> str | None:
    """Editors: several people joined with 、 in order (`王芳 李明` -> `王芳、李明`); a Latin
    staff handle is a name, a staff code (NBJ11279, the `_NBJ11279` after a name) is not."""
    names: list[str] = []
    for token in NAME_SPLIT.split(unpad(value)):
        token = _STAFF_CODE_SUFFIX.sub("", token.strip().strip(_QUOTES))
        if not token or token == labels.NAMES_ETC or _STAFF_CODE.fullmatch(token):
            continue
        if _NO_LETTERS.fullmatch(token) or _MARKUP.search(token):
            continue
        if token not in names:
            names.append(token)
    return "、".join(names) if names else None


# `／台北報導`, `/北京5月20日电` after the names: where the reporter was, not who.
_SLASH_DATELINE = re.compile(
    rf"\s*[／/]\s*[^\s/／、，,]{{1,12}}?(?:{labels.alternation(labels.REPORT_ENDS)})"
)


def clean_authors(value: str) -> str | None:
    """Authors: roles stripped, only what looks like a person kept, joined with 、."""
    names: list[str] = []
    for token in NAME_SPLIT.split(_SLASH_DATELINE.sub(" ", unpad(value))):
        token = token.strip().strip(_QUOTES)
        token = strip_role(token.rstrip(labels.NAMES_ETC) if len(token) > 3 else token)
        token = _cut_place(token)[0]
        if token and token != labels.NAMES_ETC and is_person(token) and token not in names:
            names.append(token)
    return "、".join(names) if names else None


def _cut_place(token: str) -> tuple[str, bool]:
    """(`張三`, True) for `張三台北2日電`, `張三／台北報導` or `張三台北報導`: a name that
    runs into its dateline's place; the flag says a dateline was there."""
    cut = False
    for sep in ("／", "/"):
        if sep in token:
            token, cut = token.split(sep, 1)[0], True
    digit = re.search(r"\d", token)
    if digit:
        token, cut = token[: digit.start()], True
    if _REPORT_END.search(token) and len(token) >= 5:
        token, cut = _REPORT_END.sub("", token), True
    for place in _PLACES:
        if token.endswith(place) and len(token) - len(place) >= 2:
            return token[: -len(place)], True
    if cut and len(token) >= 5:  # 張三豐高雄: a name of three and a place of two
        return token[: len(token) - 2], True
    return token, cut


# A reporter credit without a label's colon: the role, then the names up to a bracket.
_CREDIT = re.compile(
    rf"(?:^|(?<=[\s（(【\[|｜{labels.alternation(labels.REPORT_ENDS)}])|(?<=[{_HAN}]))"
    rf"(?:{'|'.join(re.escape(r) for r in _ROLES if r not in ('作者', '编译', '編譯'))})"
    rf"\s*[:：]?\s*(?P<names>[{_HAN}A-Za-z][^（）()【】\[\]<>]{{1,40}})"
)
_PHOTO = frozenset(("摄", "攝", "摄影", "攝影"))
# A dateline: 新华社北京5月20日电（记者…）, 中央社記者張三台北2日電, （記者張三／台北報導）
# at the very start of the text.
_DATELINE_NEAR = re.compile(
    rf"^\s*[（(]|(?:\d{{1,2}}日|[{_HAN}]{{2}})(?:{labels.alternation(labels.REPORT_ENDS)})\s*[（(]"
    rf"|^[^，。]{{0,12}}?(?:记者|記者)[^，。]{{2,14}}?\d{{1,2}}日(?:专|專)?(?:电|電)"
)


def credit_names(text: str) -> tuple[str, str] | None:
    """(the reporters a credit names, the credit's text): `（記者張三／台北報導）` -> 張三."""
    for match in _CREDIT.finditer(text):
        names = unpad(match.group("names"))
        # 記者張三／台北報導: the names end at the slash, the place follows it
        names = re.split(r"[／/]", names, maxsplit=1)[0]
        end = _NAMES_END.search(names)
        if end:
            if end.group() in _PHOTO:
                continue  # （新华社记者 张三 摄）: a photographer's credit, no author
            names = names[: end.start()]
        found: list[str] = []
        for token in NAME_SPLIT.split(names.strip()):
            token, dateline = _cut_place(strip_role(token))
            if not token or not is_person(token):
                break
            if token not in found:
                found.append(token)
            if dateline:
                break
        if found:
            return "、".join(found), text[match.start() : match.start("names") + len(names)]
    return None


def dateline_credit(paragraph: str) -> tuple[str, str] | None:
    """(names, the credit) from the opening of a first paragraph (its dateline), or None."""
    head = paragraph[:80]
    return credit_names(head) if _DATELINE_NEAR.search(head) else None


# A closing credit: （记者 张三）, (本报记者 李四 王五), 【记者：张三】 at the end of the text.
_CLOSING = re.compile(r"[（(【\[][^（）()【】\[\]]{3,40}[)）】\]]\s*$")


def closing_credit(line: str) -> tuple[str, str] | None:
    """(names, the credit) when a line ends with a bracketed reporter credit."""
    match = _CLOSING.search(line)
    return credit_names(match.group()) if match else None


def is_credit_line(line: str) -> bool:
    """A line that is nothing but a reporter credit: `（记者 张三）`."""
    match = _CLOSING.search(line)
    return bool(match and match.start() == 0 and credit_names(line))
