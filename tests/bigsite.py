"""A generated news site of N distinct articles (listing pages of 50 links), for benchmarks
and fault trials: bench/crawl.py, tests/faults.py."""

from __future__ import annotations

import random
from pathlib import Path

PER_LISTING = 50
PARAGRAPHS = [
    "各民主党派、工商联和无党派人士围绕中心工作深入调研，提出了一批有分量的意见建议。",
    "会议强调，要坚持大团结大联合，最大限度凝聚共识、汇聚力量，为推进中国式现代化贡献智慧和力量。",
    "统战部有关负责同志介绍了今年统一战线工作的总体安排，要求各单位加强协同配合，抓好工作落实。",
    "与会人员一致表示，将进一步增强“四个意识”、坚定“四个自信”、做到“两个维护”，在新征程上展现新作为。",
]


def build_site(root: Path, pages: int) -> None:
    listings = (pages + PER_LISTING - 1) // PER_LISTING
    (root / "tzyw").mkdir(parents=True)
    index = "".join(f'<li><a href="/tzyw/list_{n}.html">第{n}页</a></li>' for n in range(listings))
    (root / "tzyw" / "index.html").write_text(
        f"<html><body><ul>{index}</ul></body></html>", encoding="utf-8"
    )
    for n in range(listings):
        links = "".join(
            f'<li><a href="/tzyw/202403/t20240301_{i}.html">统战要闻{i}</a></li>'
            for i in range(n * PER_LISTING, min(pages, (n + 1) * PER_LISTING))
        )
        (root / "tzyw" / f"list_{n}.html").write_text(
            f"<html><body><ul>{links}</ul></body></html>", encoding="utf-8"
        )
    (root / "tzyw" / "202403").mkdir()
    # distinct articles (random word runs from the stock sentences), as on a real site:
    # identical template text would make every page a republication of every other
    rng = random.Random(5)
    words = [p[i : i + 2] for p in PARAGRAPHS for i in range(0, len(p) - 1, 2)]
    for i in range(pages):
        body = "".join(f"<p>　　{''.join(rng.choices(words, k=40))}。</p>" for _ in range(8))
        html = (
            f'<html><head><meta charset="utf-8"><title>统战要闻第{i}篇_测试统战网</title></head><body>'
            f'<div class="nav">首页 > 统战要闻</div><h1>统战要闻第{i}篇</h1>'
            f'<div class="info">来源：测试统战网　时间：2024-03-01 09:{i % 60:02d}:00</div>'
            f'<div class="content">{body}</div><div class="footer">版权所有 京ICP备00000000号</div></body></html>'
        )
        (root / "tzyw" / "202403" / f"t20240301_{i}.html").write_text(html, encoding="utf-8")
