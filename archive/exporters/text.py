"""CSV (UTF-8 with a BOM, RFC 4180, cells neutralised against formula injection) and JSONL
(one export record a line), encoded a batch at a time."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from archive.export import BOOL_COLUMNS, EXPORT_COLUMNS, INT_COLUMNS, TIME_COLUMNS

if TYPE_CHECKING:
    from archive.export import Options, Row

# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...),
# +cmd|..., -2+3, @SUM(...), and tab/CR, which some strip first): such a cell gets a
# leading apostrophe, which Excel and LibreOffice show as text (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_columns(fields: Sequence[str]) -> list[int]:
    """Positions (in `fields`) of the text columns: what may need neutralising."""
    typed = TIME_COLUMNS | INT_COLUMNS | BOOL_COLUMNS
    return [k for k, name in enumerate(fields) if name not in typed]


def time_columns(fields: Sequence[str]) -> list[int]:
    return [k for k, name in enumerate(fields) if name in TIME_COLUMNS]


def neutralise(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    """RFC 4180 CSV: a header, CRLF line ends, quotes where a cell needs them (bodies with
    newlines and quotes); a UTF-8 BOM first unless `options.bom` is off (Excel reads UTF-8
    without one as the local code page and garbles Chinese)."""
    fields = options.fields
    pick = [EXPORT_COLUMNS.index(name) for name in fields]
    texts, times = text_columns(fields), time_columns(fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(fields)
    yield (b"\xef\xbb\xbf" if options.bom else b"") + buffer.getvalue().encode("utf-8")
    for rows in batches:
        buffer.seek(0)
        buffer.truncate()
        out: list[list[Any]] = []
        for row in rows:
            cells = [row[i] for i in pick]
            for k in times:
                if cells[k] is not None:
                    cells[k] = cells[k].isoformat()
            for k in texts:
                value = cells[k]
                if value and value.startswith(FORMULA_STARTS):
                    cells[k] = "'" + value
            out.append(cells)
        writer.writerows(out)
        yield buffer.getvalue().encode("utf-8")


def jsonl_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    """One JSON object a line, keys in `options.fields` order, text as it is (no escapes)."""
    fields = options.fields
    pick = [EXPORT_COLUMNS.index(name) for name in fields]
    times = time_columns(fields)
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for rows in batches:
        lines = []
        for row in rows:
            cells = [row[i] for i in pick]
            for k in times:
                if cells[k] is not None:
                    cells[k] = cells[k].isoformat()
            lines.append(dumps(dict(zip(fields, cells, strict=True))))
        lines.append("")
        yield "\n".join(lines).encode("utf-8")
