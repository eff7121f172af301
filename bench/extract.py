"""Score `crawler.extract.extract` against trafilatura and GNE on the golden corpus, side by side.

    .venv/bin/python bench/extract.py [--pages DIR] [--rounds N] [--json]

Every extractor gets the same input, the page text decoded once by `decode_html` (so the
comparison is about extraction, not charset sniffing), and the page URL. Scores per field:
title, source, editor, author exact; publish_time to the minute (wall clock; a peer that
gives only the day scores when the truth is midnight); body as the F1 of character
bigrams (whitespace removed), median and mean. Speed is pages per second over all pages,
best of N rounds (interleaved), and its ratio to trafilatura's. A field a peer does not extract at all
counts as a miss. The peers come from the `bench` extra in pyproject.toml; one that does
not install or import is reported as such and left out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.extract import extract  # noqa: E402
from crawler.extract.dates import parse_date  # noqa: E402
from crawler.extract.decode import decode_html  # noqa: E402

FIELDS = ("title", "publish_time", "source", "editor", "author")
#: Rows of the table: the fields, with publish_time scored twice (issue 16's two measures).
ROWS = ("title", "publish_day", "publish_time", "source", "editor", "author")
ROW_NAMES = {"publish_day": "publish time, same day", "publish_time": "publish time, same minute"}
Fields = dict[str, str | None]
Extractor = Callable[[str, str], Fields]


@dataclass
class Page:
    name: str
    url: str
    text: str
    expected: dict[str, Any]


@dataclass
class Score:
    name: str
    hits: Counter[str] = field(default_factory=Counter)
    f1: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = float("inf")


def load_pages(folder: Path, pattern: str = "*.json") -> list[Page]:
    pages = []
    for truth_path in sorted(folder.glob(pattern)):
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        text, _ = decode_html(truth_path.with_suffix(".html").read_bytes())
        pages.append(Page(truth_path.stem, truth["url"], text, truth["expected"]))
    return pages


# --------------------------------------------------------------------------- extractors


def run_ours(text: str, url: str) -> Fields:
    article = extract(text, url=url)
    return {
        "title": article.title,
        "publish_time": article.publish_time,
        "source": article.source,
        "editor": article.editor,
        "author": article.author,
        "body": article.body,
    }


def make_trafilatura() -> Extractor | str:
    try:
        import trafilatura
    except ImportError as exc:
        return f"not installed ({exc})"
    params = {"outputformat": "%Y-%m-%d %H:%M:%S", "extensive_search": True, "original_date": True}

    def run(text: str, url: str) -> Fields:
        doc = trafilatura.bare_extraction(
            text,
            url=url,
            with_metadata=True,
            include_comments=False,
            date_extraction_params=params,
            as_dict=True,
        )
        doc = doc if isinstance(doc, dict) else {}
        return {
            "title": doc.get("title"),
            "publish_time": doc.get("date"),
            "source": None,  # trafilatura has a site name, not an article's 来源
            "editor": None,
            "author": doc.get("author"),
            "body": doc.get("text") or "",
        }

    return run


def make_gne() -> Extractor | str:
    try:
        from gne import GeneralNewsExtractor
    except Exception as exc:  # noqa: BLE001 — any import-time failure is what we report
        return f"does not import ({type(exc).__name__}: {exc})"
    gne = GeneralNewsExtractor()

    def run(text: str, url: str) -> Fields:
        result = gne.extract(text, host=url)
        return {
            "title": result.get("title"),
            "publish_time": result.get("publish_time"),
            "source": None,  # GNE extracts no source and no editor
            "editor": None,
            "author": result.get("author"),
            "body": result.get("content") or "",
        }

    return run


# --------------------------------------------------------------------------- scoring


def minute(value: str | None) -> str | None:
    """A date in any common format -> `YYYY-MM-DDTHH:MM` (wall clock), or None."""
    if not value:
        return None
    iso = parse_date(str(value), compact=True)
    return iso[:16] if iso else None


def bigrams(text: str) -> Counter[str]:
    chars = "".join(text.split())
    return Counter(chars[i : i + 2] for i in range(len(chars) - 1))


def bigram_f1(got: str, expected: str) -> float:
    g, e = bigrams(got), bigrams(expected)
    if not g and not e:
        return 1.0
    common = sum((g & e).values())
    if not common:
        return 0.0
    precision, recall = common / sum(g.values()), common / sum(e.values())
    return 2 * precision * recall / (precision + recall)


def run_all(run: Extractor, pages: list[Page], result: Score) -> list[Fields]:
    outputs: list[Fields] = []
    for page in pages:
        try:
            outputs.append(run(page.text, page.url))
        except Exception:  # noqa: BLE001 — a peer crashing on a page scores as empty
            result.errors += 1
            outputs.append({})
    return outputs


def score(outputs: list[Fields], pages: list[Page], result: Score) -> None:
    for page, got in zip(pages, outputs, strict=True):
        exp = page.expected
        for key in FIELDS:
            if key == "publish_time":
                hit = minute(got.get(key)) == minute(exp[key])
                day = (minute(got.get(key)) or "")[:10] == (minute(exp[key]) or "")[:10]
                result.hits["publish_day"] += day
            else:
                hit = (got.get(key) or None) == exp[key]
            result.hits[key] += hit
        result.f1.append(bigram_f1(got.get("body") or "", exp["body"]))


def time_rounds(
    extractors: list[tuple[str, Extractor]], pages: list[Page], rounds: int
) -> dict[str, float]:
    """Best time of each extractor over all pages, rounds interleaved so that a burst of
    load on a shared machine falls on every extractor alike."""
    best = {name: float("inf") for name, _ in extractors}
    for _ in range(rounds):
        for name, run in extractors:
            started = time.perf_counter()
            for page in pages:
                with contextlib.suppress(Exception):  # failures count in the scoring pass
                    run(page.text, page.url)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def table(scores: list[Score], pages: int, problems: dict[str, str]) -> str:
    base = next((s for s in scores if s.name == "trafilatura"), None)
    header = ["field", *(s.name for s in scores)]
    rows: list[list[str]] = []
    for key in ROWS:
        rows.append(
            [ROW_NAMES.get(key, key), *(f"{100 * s.hits[key] / pages:.1f} %" for s in scores)]
        )
    rows.append(["body F1 median", *(f"{statistics.median(s.f1):.3f}" for s in scores)])
    rows.append(["body F1 mean", *(f"{statistics.fmean(s.f1):.3f}" for s in scores)])
    rows.append(["pages/s", *(f"{pages / s.seconds:.0f}" for s in scores)])
    if base is not None:
        rows.append(["× trafilatura", *(f"{base.seconds / s.seconds:.1f}" for s in scores)])
    rows.append(["pages failed", *(str(s.errors) for s in scores)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    for name, problem in problems.items():
        lines.append(f"{name}: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=Path, default=ROOT / "tests" / "fixtures" / "pages")
    parser.add_argument("--glob", default="*.json", help="truth files to take (hard-*.json)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (best is kept)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON too")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # peers warn about their own dependencies
    pages = load_pages(args.pages, args.glob)
    if not pages:
        print(f"no pages in {args.pages}", file=sys.stderr)
        return 2
    extractors: list[tuple[str, Extractor]] = [("ufarchive", run_ours)]
    problems: dict[str, str] = {}
    for name, make in (("trafilatura", make_trafilatura), ("GNE", make_gne)):
        made = make()
        if isinstance(made, str):
            problems[name] = made
        else:
            extractors.append((name, made))
    scores = []
    for name, run in extractors:
        result = Score(name)
        score(run_all(run, pages, result), pages, result)
        scores.append(result)
    for result, seconds in zip(
        scores, time_rounds(extractors, pages, args.rounds).values(), strict=True
    ):
        result.seconds = seconds
    print(f"{len(pages)} pages from {args.pages}")
    print(table(scores, len(pages), problems))
    if args.json:
        print(
            json.dumps(
                {
                    s.name: {
                        **{k: s.hits[k] / len(pages) for k in ROWS},
                        "body_f1_median": statistics.median(s.f1),
                        "body_f1_mean": statistics.fmean(s.f1),
                        "pages_per_second": len(pages) / s.seconds,
                    }
                    for s in scores
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
