"""The export formats: each turns batches of typed rows (`archive.export.Row`) into chunks
of bytes as they come, so a file and a web response are written by the same generator.

csv and jsonl (`text`), parquet, xlsx; warc copies the archived records themselves
(`warc`). Heavy libraries (pyarrow, openpyxl) are imported only by their own format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from archive.exporters.text import csv_chunks, jsonl_chunks
from archive.exporters.warc import sort_cdxj, warc_chunks

if TYPE_CHECKING:
    from archive.export import Options, Row

Writer = Callable[[Iterable[list["Row"]], "Options"], Iterator[bytes]]


def parquet_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    from archive.exporters.parquet import parquet_chunks as chunks

    return chunks(batches, options)


def xlsx_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    from archive.exporters.xlsx import xlsx_chunks as chunks

    return chunks(batches, options)


WRITERS: dict[str, Writer] = {
    "csv": csv_chunks,
    "jsonl": jsonl_chunks,
    "parquet": parquet_chunks,
    "xlsx": xlsx_chunks,
}

__all__ = ["WRITERS", "csv_chunks", "jsonl_chunks", "sort_cdxj", "warc_chunks"]
