"""XLSX (openpyxl, write-only: rows stream to disk, strings are written inline, not
gathered in a shared-string table in memory).

Excel's limits: 1,048,576 rows a sheet, so past `xlsx_max_rows` data rows the export goes
on in a new sheet (`articles 2`, ...) with the header again; 32,767 characters a cell, so a
longer text is cut with a marker and the row's `truncated` column names what was cut.
Times are ISO 8601 text like the CSV (Excel has no time zones). A text cell is always a
string cell: `=...` is never turned into a formula, nor `#N/A` into an error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE

from archive.export import EXPORT_COLUMNS
from archive.exporters.text import text_columns, time_columns

if TYPE_CHECKING:
    from archive.export import Options, Row

CELL_LIMIT = 32_767
TRUNCATED_COLUMN = "truncated"
SHEET_TITLE = "articles"
READ_SIZE = 1 << 20


def cut(value: str) -> str:
    marker = f"…[cut: {len(value):,} characters in all]"
    return value[: CELL_LIMIT - len(marker)] + marker


def xlsx_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    fields = options.fields
    pick = [EXPORT_COLUMNS.index(name) for name in fields]
    texts, times = text_columns(fields), time_columns(fields)
    header = [*fields, TRUNCATED_COLUMN]
    book = Workbook(write_only=True)
    sheet: Any = None
    sheets = in_sheet = 0
    for rows in batches:
        for row in rows:
            if sheet is None or in_sheet >= options.xlsx_max_rows:
                sheets += 1
                sheet = book.create_sheet(SHEET_TITLE if sheets == 1 else f"{SHEET_TITLE} {sheets}")
                sheet.freeze_panes = "A2"
                sheet.append(header)
                in_sheet = 0
            cells: list[Any] = [row[i] for i in pick]
            for k in times:
                if cells[k] is not None:
                    cells[k] = cells[k].isoformat()
            truncated = []
            for k in texts:
                value = cells[k]
                if not value:
                    continue
                if ILLEGAL_CHARACTERS_RE.search(value):  # control characters XML cannot hold
                    value = ILLEGAL_CHARACTERS_RE.sub("", value)
                if len(value) > CELL_LIMIT:
                    value = cut(value)
                    truncated.append(fields[k])
                if value[0] == "=" or value in ERROR_CODES:
                    text = WriteOnlyCell(sheet, value=value)
                    text.data_type = "s"
                    value = text
                cells[k] = value
            cells.append(",".join(truncated) or None)
            sheet.append(cells)
            in_sheet += 1
    if sheet is None:
        sheet = book.create_sheet(SHEET_TITLE)
        sheet.append(header)
    with tempfile.TemporaryFile() as fh:
        book.save(fh)
        fh.seek(0)
        while chunk := fh.read(READ_SIZE):
            yield chunk
