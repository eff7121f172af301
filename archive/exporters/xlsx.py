"""XLSX: the worksheet XML written row by row into the zip package as rows come.

Not openpyxl's write-only mode, which the issue suggested: it builds a Cell object and an
lxml element for every cell and took 12x the CPU of this writer (1.74 s for 5,000 rows
of the export record against 0.58 s for 20,000; bench/export.py), which at a million
rows is the difference between minutes and most of an hour. openpyxl reads every file
this writes back in the tests. The package is the minimal SpreadsheetML one (ECMA-376:
content types, workbook, its relationships, a stylesheet, worksheets); text is written
inline (`t="inlineStr"`), so nothing is gathered in a shared-string table in memory, and
a text cell is never a formula (`=...`) nor an error (`#N/A`).

Excel's limits: 1,048,576 rows a sheet, so past `xlsx_max_rows` data rows the export goes
on in a new sheet (`articles 2`, ...) with the header again; 32,767 characters a cell,
so a longer text is cut with a marker and the row's `truncated` column names what was
cut. A sheet is also closed before its XML reaches 4 GB, so no member needs ZIP64
(Excel asks to repair Python's ZIP64 members). Times are ISO 8601 text like the CSV
(Excel has no time zones).
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from archive.export import BOOL_COLUMNS, EXPORT_COLUMNS, INT_COLUMNS
from archive.exporters.text import time_columns

if TYPE_CHECKING:
    from archive.export import Options, Row

CELL_LIMIT = 32_767
TRUNCATED_COLUMN = "truncated"
SHEET_TITLE = "articles"
# A sheet is streamed into the zip (size unknown when it starts); past 2 GiB - 1 Python's
# zipfile refuses such a member without ZIP64 (zipfile.ZIP64_LIMIT, not the 4 GiB of the
# format), and ZIP64 makes some spreadsheet programs warn: a sheet ends before it.
ZIP32_LIMIT = zipfile.ZIP64_LIMIT
READ_SIZE = 1 << 20
# zlib level: 1 deflated the record's text 3.5x as fast as Excel's and openpyxl's 6, into
# a file 17 % larger (12.6 MB of article bodies: 0.17 s and 44 % against 0.59 s and 37 %)
COMPRESSION = 1
# Characters XML 1.0 cannot hold (control characters but tab, LF, CR): dropped.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
<Default Extension="xml" ContentType="application/xml"/>\
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
{sheets}</Types>"""
SHEET_TYPE = '<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>\
</Relationships>"""
WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" \
xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">\
<sheets>{sheets}</sheets></workbook>"""
WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
{sheets}<Relationship Id="rIdStyles" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>\
</Relationships>"""
SHEET_REL = '<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>'
# Style 0: the default; style 1: bold, for the header row.
STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>\
<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>\
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
</styleSheet>"""
SHEET_HEAD = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>\
</sheetView></sheetViews><sheetData>"""
SHEET_TAIL = "</sheetData></worksheet>"


def column_letters(count: int) -> list[str]:
    letters = []
    for k in range(1, count + 1):
        name = ""
        while k:
            k, rest = divmod(k - 1, 26)
            name = chr(65 + rest) + name
        letters.append(name)
    return letters


def cut(value: str) -> str:
    marker = f"…[cut: {len(value):,} characters in all]"
    return value[: CELL_LIMIT - len(marker)] + marker


def text_cell(ref: str, value: str) -> str:
    if _ILLEGAL.search(value):
        value = _ILLEGAL.sub("", value)
    # str.replace, not str.translate: translate looks every character up in a dict and
    # took 70x as long on Chinese text
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if "\r" in value:  # a bare CR would come back from an XML parser as LF
        value = value.replace("\r", "&#13;")
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{value}</t></is></c>'


def header_row(letters: Sequence[str], names: Sequence[str]) -> str:
    cells = "".join(
        text_cell(f"{col}1", name).replace(' t="inlineStr"', ' s="1" t="inlineStr"', 1)
        for col, name in zip(letters, names, strict=True)
    )
    return f'<row r="1">{cells}</row>'


class _Book:
    """The zip package being written: its sheets, then the parts that list them."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(
            fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION
        )
        self.sheets = 0
        self.sheet: IO[bytes] | None = None
        self.written = 0

    def new_sheet(self, header: str) -> None:
        self.end_sheet()
        self.sheets += 1
        self.sheet = self.zip.open(f"xl/worksheets/sheet{self.sheets}.xml", "w")
        self.written = 0
        self.write(SHEET_HEAD + header)

    def write(self, text: str) -> None:
        assert self.sheet is not None
        data = text.encode("utf-8")
        self.sheet.write(data)
        self.written += len(data)

    def end_sheet(self) -> None:
        if self.sheet is not None:
            self.write(SHEET_TAIL)
            self.sheet.close()
            self.sheet = None

    def abort(self) -> None:
        """Close without the workbook parts (the export stopped; the file is thrown away),
        before the temporary file goes, so nothing tries to write to it afterwards."""
        if self.sheet is not None:
            self.sheet.close()
            self.sheet = None
        self.zip.close()

    def close(self) -> None:
        self.end_sheet()
        numbers = range(1, self.sheets + 1)
        titles = [SHEET_TITLE if n == 1 else f"{SHEET_TITLE} {n}" for n in numbers]
        parts = {
            "[Content_Types].xml": CONTENT_TYPES.format(sheets="".join(SHEET_TYPE.format(n=n) for n in numbers)),
            "_rels/.rels": ROOT_RELS,
            "xl/workbook.xml": WORKBOOK.format(sheets="".join(
                f'<sheet name="{t}" sheetId="{n}" r:id="rId{n}"/>' for n, t in zip(numbers, titles, strict=True)
            )),
            "xl/_rels/workbook.xml.rels": WORKBOOK_RELS.format(sheets="".join(SHEET_REL.format(n=n) for n in numbers)),
            "xl/styles.xml": STYLES,
        }  # fmt: skip
        for name, text in parts.items():
            self.zip.writestr(name, text)
        self.zip.close()


def xlsx_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    """The workbook, built in a temporary file (a zip's member sizes are written back into
    its headers, which a stream cannot take) and then read out in chunks."""
    with tempfile.TemporaryFile() as fh:
        book = _Book(fh)
        try:
            _Rows(book, options).write(batches)
        except BaseException:
            book.abort()
            raise
        book.close()
        fh.seek(0)
        while chunk := fh.read(READ_SIZE):
            yield chunk


class _Rows:
    """Rows of the export record as worksheet XML, a new sheet whenever one is full."""

    def __init__(self, book: _Book, options: Options) -> None:
        self.book = book
        self.max_rows = options.xlsx_max_rows
        self.fields = options.fields
        self.pick = [EXPORT_COLUMNS.index(name) for name in self.fields]
        self.times = set(time_columns(self.fields))
        self.letters = column_letters(len(self.fields) + 1)
        self.header = header_row(self.letters, [*self.fields, TRUNCATED_COLUMN])
        self.kinds = [
            "b" if f in BOOL_COLUMNS else "n" if f in INT_COLUMNS else "t" for f in self.fields
        ]
        # a sheet ends while one more row of the largest kind (every cell full, 3 bytes a
        # character) still fits under the ZIP64 limit
        self.room = ZIP32_LIMIT - 3 * (len(self.fields) + 1) * (CELL_LIMIT + 200)

    def write(self, batches: Iterable[list[Row]]) -> None:
        book = self.book
        book.new_sheet(self.header)
        line = 1  # the sheet's last row written
        for rows in batches:
            out: list[str] = []
            pending = 0  # characters in `out`
            for row in rows:
                if line > self.max_rows or book.written + 3 * pending > self.room:
                    book.write("".join(out))
                    out, pending = [], 0
                    book.new_sheet(self.header)
                    line = 1
                line += 1
                xml = self.row(row, line)
                out.append(xml)
                pending += len(xml)
            book.write("".join(out))

    def row(self, row: Row, line: int) -> str:
        cells = []
        truncated = []
        letters, kinds, times = self.letters, self.kinds, self.times
        for k, i in enumerate(self.pick):
            value = row[i]
            if value is None:
                continue
            ref = f"{letters[k]}{line}"
            kind = kinds[k]
            if kind == "n":
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif kind == "b":
                cells.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
            else:
                text = value.isoformat() if k in times else value
                if len(text) > CELL_LIMIT:
                    text = cut(text)
                    truncated.append(self.fields[k])
                cells.append(text_cell(ref, text))
        if truncated:
            cells.append(text_cell(f"{letters[-1]}{line}", ",".join(truncated)))
        return f'<row r="{line}">{"".join(cells)}</row>'
