"""Body, captions, images and cleanup on small pages made for one behaviour each."""

from __future__ import annotations

from crawler.extract import extract
from crawler.extract.cleanup import remove_pinyin

PARAS = (
    "<p>　　2月7日，全市统战部长会议召开，会议总结了2023年全市统战工作，部署了2024年重点任务。</p>"
    "<p>　　会议强调，要坚持党对统一战线工作的全面领导，把握好团结和民主两大主题，凝聚人心、汇聚力量。</p>"
)


def page(content: str, head: str = "<title>全市统战部长会议召开_某某统战网</title>") -> str:
    nav = "".join(f'<li><a href="/c{i}">栏目{i}</a></li>' for i in range(8))
    return (
        f"<html><head>{head}</head><body><ul>{nav}</ul>"
        f"<div class='main'><h1>全市统战部长会议召开</h1>"
        f"<div class='info'>来源：市委统战部　发布时间：2024-02-07 10:29</div>"
        f"<div class='content'>{content}</div>"
        f"<div class='editor'>责任编辑：王芳</div></div>"
        f"<div class='foot'>版权所有：某某市委统战部 某ICP备12345678号 某公网安备 123号</div>"
        f"</body></html>"
    )


def test_fields_and_a_clean_body() -> None:
    got = extract(page(PARAS), url="http://tzb.example.gov.cn/a/1.html")
    assert got.title == "全市统战部长会议召开"
    assert got.publish_time == "2024-02-07T10:29:00+08:00"
    assert (got.source, got.editor) == ("市委统战部", "王芳")
    assert got.body.split("\n") == [
        "2月7日，全市统战部长会议召开，会议总结了2023年全市统战工作，部署了2024年重点任务。",
        "会议强调，要坚持党对统一战线工作的全面领导，把握好团结和民主两大主题，凝聚人心、汇聚力量。",
    ]


def test_pinyin_leaks_and_ruby_never_reach_a_field() -> None:
    assert remove_pinyin("中國統(tǒng)一戰(zhàn)線雜志") == "中國統一戰線雜志"
    assert remove_pinyin("微信(wechat)和中国(China)") == "微信(wechat)和中国(China)"
    content = (
        "<p>　　銅陵市委統(tǒng)戰(zhàn)部以習近平新時代中國特色社會主義思想為指導，緊扣工作主線，推動工作。</p>"
        "<p>　　<ruby>統<rp>(</rp><rt>tǒng</rt><rp>)</rp></ruby>一戰線成員在增強“四個意識”上認識更深刻、態度更堅決。</p>"
    )
    got = extract(page(content))
    assert "tǒng" not in got.body and "zhàn" not in got.body
    assert got.body.split("\n") == [
        "銅陵市委統戰部以習近平新時代中國特色社會主義思想為指導，緊扣工作主線，推動工作。",
        "統一戰線成員在增強“四個意識”上認識更深刻、態度更堅決。",
    ]


def test_captions_go_to_images_not_the_body() -> None:
    content = (
        PARAS
        + '<p style="text-align:center"><img src="/upload/1.jpg"></p>'
        + '<p style="text-align:center">2月7日，会议现场。（记者 张三 摄）</p>'
        + '<p align="center"><img src="/upload/2.jpg"><br>与会人员合影</p>'
        + '<p style="text-align:center"><img src="data:image/gif;base64,R0lGOD" data-src="/upload/3.jpg"></p>'
        + "<p>　　会议要求，各级统战部门要聚焦中心大局，主动担当作为，奋力开创统战工作新局面。</p>"
        + '<p><img src="/images/icon_share.png" width="16" height="16"></p>'
    )
    got = extract(page(content), url="http://tzb.example.gov.cn/a/1.html")
    assert [(i.src, i.caption) for i in got.images] == [
        ("http://tzb.example.gov.cn/upload/1.jpg", "2月7日，会议现场。（记者 张三 摄）"),
        ("http://tzb.example.gov.cn/upload/2.jpg", "与会人员合影"),
        ("http://tzb.example.gov.cn/upload/3.jpg", None),
    ]
    assert "会议现场" not in got.body and "合影" not in got.body
    assert got.body.endswith("奋力开创统战工作新局面。")


def test_br_paragraphs_and_the_contributor_line() -> None:
    content = (
        "　　第一段，统一战线是党克敌制胜、执政兴国的重要法宝。<br><br>"
        "　　第二段，要坚持大团结大联合，最大限度凝聚共识。<br><br>"
        "<p>（某某县委统战部 供稿）</p>"
    )
    got = extract(page(content))
    assert got.body == (
        "第一段，统一战线是党克敌制胜、执政兴国的重要法宝。\n第二段，要坚持大团结大联合，最大限度凝聚共识。"
    )
    assert got.contributor == "某某县委统战部"


def test_toolbars_related_lists_and_footers_stay_out() -> None:
    content = (
        "<div>【字号：大 中 小】【打印】【关闭窗口】</div>"
        + PARAS
        + "<div>分享到：微信 微博</div>"
        + "<h3>相关新闻</h3><ul><li><a href='/1'>另一条新闻的标题在这里</a></li>"
        + "<li><a href='/2'>再一条新闻的标题在这里</a></li></ul>"
    )
    got = extract(page(content))
    for junk in ("字号", "打印", "分享", "相关新闻", "另一条", "版权所有", "ICP备", "责任编辑"):
        assert junk not in got.body
    assert len(got.body.split("\n")) == 2


def test_no_article_no_fields() -> None:
    got = extract("<html><body><ul><li><a href='/'>首页</a></li></ul></body></html>")
    assert (got.title, got.publish_time, got.source, got.body, got.images) == (
        None,
        None,
        None,
        "",
        [],
    )
