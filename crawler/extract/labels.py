"""The Chinese labels that name article metadata: ONE table, simplified and traditional side by side.

Every other module takes its label words from here; none spells a label itself. A pair is
(simplified, traditional); where both scripts write the word the same, it appears once.
Order inside a tuple does not matter: the patterns are built longest-first, so 责任编辑
wins over 编辑 and 发布时间 over 时间.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def _both(*pairs: tuple[str, ...] | str) -> tuple[str, ...]:
    words: list[str] = []
    for pair in pairs:
        for word in (pair,) if isinstance(pair, str) else pair:
            if word not in words:
                words.append(word)
    return tuple(words)


#: 来源 — where the article comes from (a paper, an agency, a department).
SOURCE = _both(
    ("来源", "來源"),
    ("信息来源", "信息來源"),
    ("文章来源", "文章來源"),
    ("新闻来源", "新聞來源"),
    ("稿件来源", "稿件來源"),
    ("内容来源", "內容來源"),
    ("来源于", "來源於"),
    ("本文来源", "本文來源"),
    ("文章出处", "文章出處"),
    "稿源",
    ("出处", "出處"),
    ("转自", "轉自"),
    ("转载自", "轉載自"),
    ("转载于", "轉載於"),
)

#: 发布时间 — ranked: the first group names the publication itself, the second is a bare
#: "time/date", the third a later event (an update, a document's signing) used only when
#: nothing better is on the page.
PUBLISH_TIME_PRIMARY = _both(
    ("发布时间", "發佈時間", "發布時間"),
    ("发布日期", "發佈日期", "發布日期"),
    ("发表时间", "發表時間"),
    ("发表日期", "發表日期"),
    ("发稿时间", "發稿時間"),
    ("刊发时间", "刊發時間"),
    ("刊发日期", "刊發日期"),
    ("发文时间", "發文時間"),
    ("发文日期", "發文日期"),
    ("出版时间", "出版時間"),
    ("出版日期", "出版日期"),
    ("上线时间", "上線時間"),
    ("发布于", "發佈於", "發布於"),
    ("发表于", "發表於"),
)
PUBLISH_TIME_PLAIN = _both(
    ("时间", "時間"),
    "日期",
    ("上传时间", "上傳時間"),
    ("添加时间", "添加時間"),
    ("录入时间", "錄入時間"),
    ("稿件时间", "稿件時間"),
    ("发布", "發佈", "發布"),
)
PUBLISH_TIME_LATE = _both(
    ("更新时间", "更新時間"),
    ("更新日期", "更新日期"),
    ("修改时间", "修改時間"),
    ("成文日期", "成文日期"),
)
PUBLISH_TIME = PUBLISH_TIME_PRIMARY + PUBLISH_TIME_PLAIN + PUBLISH_TIME_LATE

#: 责任编辑 — the editor(s); several are joined with 、 in the output.
EDITOR = _both(
    ("责任编辑", "責任編輯"),
    ("责编", "責編"),
    ("编辑", "編輯"),
    ("网络编辑", "網絡編輯", "網路編輯"),
    ("网站编辑", "網站編輯"),
    ("值班编辑", "值班編輯"),
    ("本文编辑", "本文編輯"),
    ("文字编辑", "文字編輯"),
    ("编辑人员", "編輯人員"),
)

#: The editor of record: preferred when a page also names other editors (编辑：A 责任编辑：B).
EDITOR_RESPONSIBLE = _both(("责任编辑", "責任編輯"), ("责编", "責編"))

#: 作者 / 记者 / 文 — who wrote it. 文 and 撰文 also take a slash (文/张三).
AUTHOR = _both(
    "作者",
    ("记者", "記者"),
    ("本报记者", "本報記者"),
    ("本网记者", "本網記者"),
    ("本刊记者", "本刊記者"),
    ("特约记者", "特約記者"),
    "撰稿",
    "撰文",
    "文",
)
#: Author labels that may stand without a colon before a name: 记者 张三.
AUTHOR_BARE = _both(
    ("记者", "記者"),
    ("本报记者", "本報記者"),
    ("本网记者", "本網記者"),
    ("本刊记者", "本刊記者"),
    ("特约记者", "特約記者"),
)
#: One-character labels that also take a slash instead of a colon: 文/张三, 图/李四.
SLASH_LABELS = ("文", "图", "圖")

#: 供稿 — the contributing unit; `（XX 供稿）` at the end of the body, or 供稿：XX.
CONTRIBUTOR = _both(
    "供稿",
    ("供稿单位", "供稿單位"),
    "供稿人",
)
CONTRIBUTOR_SUFFIX = "供稿"

#: Labels that are not fields but end the value before them (点击：, 审核：, 字号 ...).
OTHER = _both(
    ("审核", "審核", "審覈"),
    ("发布人", "發佈人"),
    ("发布者", "發佈者"),
    ("录入", "錄入"),
    ("录入者", "錄入者"),
    ("上传者", "上傳者"),
    ("审校", "審校"),
    ("审稿", "審稿"),
    ("终审", "終審"),
    ("初审", "初審"),
    ("复审", "複審"),
    ("签发", "簽發"),
    ("校对", "校對"),
    ("责任校对", "責任校對"),
    ("编审", "編審"),
    ("主编", "主編"),
    ("监制", "監製"),
    ("统筹", "統籌"),
    ("策划", "策劃"),
    ("出品", "出品"),
    ("图片编辑", "圖片編輯"),
    ("美术编辑", "美術編輯"),
    ("美编", "美編"),
    ("摄影", "攝影"),
    ("摄像", "攝像"),
    ("图", "圖"),
    ("图片", "圖片"),
    ("通讯员", "通訊員"),
    ("点击", "點擊"),
    ("点击数", "點擊數"),
    ("点击量", "點擊量"),
    ("浏览", "瀏覽"),
    ("浏览次数", "瀏覽次數"),
    ("浏览量", "瀏覽量"),
    ("阅读", "閱讀"),
    ("阅读量", "閱讀量"),
    ("阅读次数", "閱讀次數"),
    ("访问量", "訪問量"),
    ("访问次数", "訪問次數"),
    ("人气", "人氣"),
    ("字号", "字號"),
    ("字体", "字體"),
    ("分享", "分享"),
    ("分享到", "分享到"),
    ("关键词", "關鍵詞"),
    ("关键字", "關鍵字"),
    ("标签", "標籤"),
    ("所属栏目", "所屬欄目"),
    ("栏目", "欄目"),
    ("索引号", "索引號"),
    ("发布机构", "發佈機構"),
    ("发布单位", "發佈單位"),
    ("发表于", "發表於"),
    ("联系电话", "聯繫電話"),
    # The time of an event the article announces is not its publication time.
    ("会议时间", "會議時間"),
    ("活动时间", "活動時間"),
    ("举办时间", "舉辦時間"),
    ("报名时间", "報名時間"),
    ("截止时间", "截止時間"),
    ("截止日期", "截止日期"),
    ("开始时间", "開始時間"),
    ("结束时间", "結束時間"),
    ("开放时间", "開放時間"),
    ("办理时间", "辦理時間"),
    ("受理时间", "受理時間"),
    ("考试时间", "考試時間"),
    ("培训时间", "培訓時間"),
    ("会议地点", "會議地點"),
    ("活动地点", "活動地點"),
    "地点",
    ("地點",),
    ("地址", "地址"),
    ("电话", "電話"),
)

#: Words on the bars around an article, never part of its text: font size, print, close,
#: share, previous/next, related links, QR codes, error reports.
TOOLBAR_WORDS = _both(
    ("字号", "字號"),
    ("字体", "字體"),
    ("打印", "打印"),
    ("打印本页", "打印本頁"),
    ("打印此文", "打印此文"),
    ("关闭窗口", "關閉窗口", "關閉視窗"),
    ("关闭本页", "關閉本頁"),
    ("分享到", "分享到"),
    ("分享", "分享"),
    ("收藏", "收藏"),
    ("纠错", "糾錯"),
    ("我要纠错", "我要糾錯"),
    ("挑错", "挑錯"),
    ("推荐", "推薦"),
    ("返回顶部", "返回頂部"),
    ("扫一扫", "掃一掃"),
    ("在手机打开当前页", "在手機打開當前頁"),
    ("手机扫一扫", "手機掃一掃"),
    ("手机阅读", "手機閱讀"),
    ("更多新闻", "更多新聞"),
    ("更多阅读", "更多閱讀"),
    ("用手机扫描", "用手機掃描"),
    ("上一篇", "上一篇"),
    ("下一篇", "下一篇"),
    ("相关新闻", "相關新聞"),
    ("相关阅读", "相關閱讀"),
    ("相关链接", "相關鏈接", "相關連結"),
    ("相关文章", "相關文章"),
    ("延伸阅读", "延伸閱讀"),
    ("推荐阅读", "推薦閱讀"),
    ("热点新闻", "熱點新聞"),
    ("热点排行", "熱點排行"),
    ("参与互动", "參與互動"),
    ("在看", "在看"),
    ("点赞", "點讚", "點贊"),
    ("喜欢作者", "喜歡作者"),
    ("阅读原文", "閱讀原文"),
    ("当前位置", "當前位置"),
    ("您的位置", "您的位置"),
    ("您现在的位置", "您現在的位置"),
    ("您当前的位置", "您當前的位置"),
    ("所在位置", "所在位置"),
    ("小字号", "小字號"),
    ("大字号", "大字號"),
)

#: A line that says where the page is (breadcrumbs) starts with one of these.
BREADCRUMB_START = _both(
    ("当前位置", "當前位置"),
    ("您的位置", "您的位置"),
    ("您现在的位置", "您現在的位置"),
    ("您当前的位置", "您當前的位置"),
    ("所在位置", "所在位置"),
    ("当前所在位置", "當前所在位置"),
    ("位置", "位置"),
)

#: Site footers: copyright, ICP 备案, 公网安备, hosting and contact lines.
FOOTER_WORDS = _both(
    ("版权所有", "版權所有"),
    ("版权声明", "版權聲明"),
    ("免责声明", "免責聲明"),
    ("ICP备", "ICP備"),
    "ICP证",
    ("ICP證",),
    ("公网安备", "公網安備"),
    ("网站标识码", "網站標識碼"),
    ("主办单位", "主辦單位"),
    ("承办单位", "承辦單位"),
    ("技术支持", "技術支持"),
    ("联系我们", "聯繫我們"),
    ("网站地图", "網站地圖"),
    ("未经授权", "未經授權"),
    ("禁止转载", "禁止轉載"),
    ("不得转载", "不得轉載"),
    ("All Rights Reserved", "All rights reserved"),
    "Copyright",
    "©",
)

#: Words that mark a photo caption: it opens with 图为, ends with a credit (新华社记者
#: 张三 摄), or names where the picture comes from.
CAPTION_LEADS = _both(("图为", "圖為", "圖爲"))
CAPTION_CREDITS = _both(("摄", "攝"), ("供图", "供圖"))
CAPTION_SOURCES = _both(("图片来源", "圖片來源"), ("资料图", "資料圖"))

#: A breadcrumb may also start with the home link itself: 首页 > 新闻 > 正文.
HOME_WORDS = _both(
    ("首页", "首頁"), ("主页", "主頁"), ("网站首页", "網站首頁"), ("返回首页", "返回首頁")
)

#: Headings of what follows an article — previous/next, related links, comments,
#: recommendations (WeChat's 往期推荐): the text ends where one starts.
FURNITURE_HEADINGS = _both(
    "上一篇",
    "下一篇",
    ("相关", "相關"),
    ("延伸阅读", "延伸閱讀"),
    ("推荐", "推薦"),
    ("热门", "熱門"),
    ("热点", "熱點"),
    ("猜你喜欢", "猜你喜歡"),
    ("网友评论", "網友評論"),
    ("新闻评论", "新聞評論"),
    ("发表评论", "發表評論"),
    ("评论", "評論"),
    "往期",
    "更多",
    ("精彩推荐", "精彩推薦"),
    "大家都在看",
    ("为你推荐", "為你推薦"),
    ("专题推荐", "專題推薦"),
)

#: A site's disclaimer under the text: 新浪声明：此消息系转载自…, 免责声明：…
NOTICE_WORDS = _both(("声明", "聲明"))

#: What is left on a share/print bar once its tool words are gone.
SHARE_TARGETS = (
    "微信", "微博", "QQ空间", "QQ", "朋友圈", "Facebook", "Twitter", "WhatsApp",
    "打印", "关闭", "關閉", "返回", "顶部", "頂部", "大", "中", "小",
)  # fmt: skip

#: A site's clock in its banner ("今天是2024年5月1日 星期三") shows the crawl day.
CLOCK_WORDS = _both(
    "今天", "今日", ("当前时间", "當前時間"), ("现在时间", "現在時間"), ("欢迎", "歡迎")
)

#: How the name of a medium or a department ends: an unlabelled name beside the date
#: line is a source (央视网 | 2024年…), and a byline ending so is no person.
MEDIUM_SUFFIXES = _both(
    ("网", "網"), ("报", "報"), "社", "台", "刊", ("杂志", "雜誌"), ("频道", "頻道"),
    ("新闻", "新聞"), ("网站", "網站"), "部", "局", "委", ("厅", "廳"), ("办", "辦"), "中心",
)  # fmt: skip
ORG_SUFFIXES = MEDIUM_SUFFIXES + _both(
    ("会", "會"), "站", "院", "司", ("处", "處"), ("联", "聯"), ("团", "團"), "所",
    ("组", "組"), ("馆", "館"), "校", ("盟",),
)  # fmt: skip

#: "and others" after a list of names.
NAMES_ETC = "等"

#: Colons that follow a label; 丨 and ｜ are how WeChat accounts and Hong Kong papers write
#: it (编辑丨张三, hk-trad-02: 文｜邵光明).
COLONS = ":：︰丨｜"


def alternation(words: Iterable[str]) -> str:
    """A regex alternation of `words`, longest first, so 责任编辑 wins over 编辑."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


#: Labels that are not fields but still make a line metadata (a reviewer, a counter).
METADATA_LINE_OPENERS = _both(
    ("审核", "審核", "審覈"),
    ("校对", "校對"),
    ("摄影", "攝影"),
    ("通讯员", "通訊員"),
    ("图", "圖"),
    ("发布人", "發佈人"),
    ("发布者", "發佈者"),
    ("录入", "錄入"),
    ("录入者", "錄入者"),
    ("上传者", "上傳者"),
    ("点击", "點擊"),
    ("点击数", "點擊數"),
    ("点击量", "點擊量"),
    ("浏览", "瀏覽"),
    ("浏览次数", "瀏覽次數"),
    ("浏览量", "瀏覽量"),
    ("阅读", "閱讀"),
    ("阅读量", "閱讀量"),
    ("阅读次数", "閱讀次數"),
    ("访问量", "訪問量"),
    ("人气", "人氣"),
    ("字号", "字號"),
    ("字体", "字體"),
)

#: Field name -> its labels, in the order fields are looked up.
FIELD_LABELS: dict[str, tuple[str, ...]] = {
    "source": SOURCE,
    "publish_time": PUBLISH_TIME,
    "editor": EDITOR,
    "author": AUTHOR,
    "contributor": CONTRIBUTOR,
}

#: Every label, field or not: a value ends where the next label begins.
ALL_LABELS: tuple[str, ...] = _both(*FIELD_LABELS.values(), OTHER)

#: How a site's name ends, when `——` puts one after a headline in <title> (标题——某某网);
#: anything else after `——` is the headline's own subtitle.
SITE_NAME_ENDS = _both(
    ("网", "網"), ("网站", "網站"), ("门户网站", "門戶網站"), ("政府", "政府"),
    ("在线", "在線"), ("频道", "頻道"), ("新闻网", "新聞網"), ("官网", "官網"),
)  # fmt: skip

#: A <title> that greets the visitor instead of naming the page (old county sites).
GREETINGS = _both(
    ("欢迎访问", "歡迎訪問"),
    ("欢迎光临", "歡迎光臨"),
    ("欢迎来到", "歡迎來到"),
    ("欢迎您", "歡迎您"),
)

#: Badges a CMS sets before a headline: 原创 (WeChat), 独家, 转载, 置顶, 视频.
HEADLINE_BADGES = _both(
    ("原创", "原創"), ("独家", "獨家"), ("转载", "轉載"), "置顶", ("置頂",), ("视频", "視頻"),
    ("图文", "圖文"), "首发", ("首發",), ("推荐", "推薦"),
)  # fmt: skip

#: What a 来源 slot says when it names no source: the page was copied, written in house,
#: or "collected" (综合). Null, or the real source when the page names one elsewhere.
SOURCE_PLACEHOLDERS = _both(
    ("转载文章", "轉載文章"), ("转载", "轉載"), ("本站原创", "本站原創"), ("原创", "原創"),
    ("本网原创", "本網原創"), ("网络", "網絡", "網路"), ("网络转载", "網絡轉載", "網路轉載"),
    ("网络整理", "網絡整理", "網路整理"), ("互联网", "互聯網"), "综合", ("綜合",),
    ("综合整理", "綜合整理"), ("综合报道", "綜合報道", "綜合報導"), ("本站", "本站"),
    ("本网", "本網"), "未知", ("不详", "不詳"), ("其他", "其它"), ("网友投稿", "網友投稿"),
    ("佚名",), "admin", "Admin", ("管理员", "管理員"), ("本站编辑", "本站編輯"),
)  # fmt: skip

#: A writer's role before the name in a byline: stripped (`本报记者 张三` -> 张三); a role
#: may follow a medium's name (`新华社记者`, `中央社記者`).
AUTHOR_ROLES = _both(
    ("记者", "記者"), ("本报记者", "本報記者"), ("本网记者", "本網記者"), ("本刊记者", "本刊記者"),
    ("特约记者", "特約記者"), ("见习记者", "見習記者"), ("实习记者", "實習記者"),
    ("首席记者", "首席記者"), ("主任记者", "主任記者"), ("高级记者", "高級記者"),
    ("驻站记者", "駐站記者"), ("特派记者", "特派記者"), ("融媒体记者", "融媒體記者"),
    ("全媒体记者", "全媒體記者"), ("评论员", "評論員"), ("特约评论员", "特約評論員"),
    ("本报评论员", "本報評論員"), ("专栏作者", "專欄作者"), ("专栏作家", "專欄作家"),
    ("特约撰稿人", "特約撰稿人"), ("撰稿人", "撰稿人"), ("本报特约评论员", "本報特約評論員"),
    "作者", ("编译", "編譯"),
)  # fmt: skip

#: What ends a dateline's place: 台北報導, 北京5月20日电, 台北2日電, 綜合報導.
REPORT_ENDS = _both(("报道", "報導", "報道", "报导"), ("电", "電"), ("专电", "專電"), ("讯", "訊"))

#: Words on links and buttons near a byline that are never a person (更多>>, 返回首页).
UI_WORDS = _both(
    "更多", ("返回", "返回"), ("首页", "首頁"), ("返回首页", "返回首頁"), ("登录", "登錄", "登入"),
    ("注册", "註冊"), ("关注", "關注"), ("订阅", "訂閱"), ("点击", "點擊"), ("查看", "查看"),
    ("全文", "全文"), ("详情", "詳情"), ("分享", "分享"), ("收藏", "收藏"), ("评论", "評論"),
    ("打印", "打印"), ("关闭", "關閉"), ("原文", "原文"), ("链接", "鏈接", "連結"),
)  # fmt: skip

#: What a CMS writes where a person's name goes, naming nobody.
NOT_PEOPLE = _both(
    ("管理员", "管理員"), ("系统管理员", "系統管理員"), ("超级管理员", "超級管理員"), "匿名",
    ("佚名",), ("小编", "小編"), ("本站编辑", "本站編輯"), ("编辑部", "編輯部"), ("网友", "網友"),
    ("本站", "本站"), ("本网", "本網"), ("未知", "未知"), ("不详", "不詳"), "admin", "Admin",
    "administrator", "system",
)  # fmt: skip

#: Dateline places that a name may run into without a space (中央社記者張三台北2日電):
#: the capitals and large cities a Chinese-language dateline names most. Not a site rule:
#: a place list for splitting 張三台北 into a name and a place.
DATELINE_PLACES = _both(
    "北京", "上海", ("天津",), "重庆", ("重慶",), ("香港",), ("澳门", "澳門"), "台北", ("臺北",),
    ("新北",), ("台中", "臺中"), ("台南", "臺南"), ("高雄",), ("桃园", "桃園"), ("基隆",),
    ("新竹",), ("嘉义", "嘉義"), ("花莲", "花蓮"), ("台东", "臺東", "台東"), ("宜兰", "宜蘭"),
    ("金门", "金門"), ("马祖", "馬祖"), ("澎湖",), ("屏东", "屏東"), ("南投",), ("彰化",),
    ("苗栗",), ("云林", "雲林"), ("福州",), ("厦门", "廈門"), ("广州", "廣州"), ("深圳",),
    ("南京",), ("杭州",), ("武汉", "武漢"), ("成都",), ("西安",), ("东京", "東京"),
    ("华盛顿", "華盛頓"), ("纽约", "紐約"), ("伦敦", "倫敦"), ("巴黎",), ("首尔", "首爾"),
    ("新加坡",), ("联合国", "聯合國"),
)  # fmt: skip
