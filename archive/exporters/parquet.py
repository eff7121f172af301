"""Parquet (pyarrow): typed columns, a row group every `parquet_row_group_rows` rows, zstd.

Times are UTC timestamps (microseconds, tz=UTC: Parquet keeps one zone a column, so the
page's own offset stays in JSONL/CSV); ids and versions are integers, is_original a
boolean, text UTF-8. Each batch becomes an Arrow record batch at once, so only the row
group being filled is held, in Arrow's compact form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from archive.export import BOOL_COLUMNS, EXPORT_COLUMNS, INT_COLUMNS, TIME_COLUMNS

if TYPE_CHECKING:
    from archive.export import Options, Row

# Low-cardinality text: dictionary pages make them a fraction of their plain size.
DICTIONARY_COLUMNS = ("site", "source", "editor", "author", "contributor", "status")


def arrow_type(name: str) -> Any:
    if name in TIME_COLUMNS:
        return pa.timestamp("us", tz="UTC")
    if name in INT_COLUMNS:
        return pa.int64()
    if name in BOOL_COLUMNS:
        return pa.bool_()
    return pa.string()


def arrow_schema(fields: Iterable[str]) -> Any:
    return pa.schema([pa.field(name, arrow_type(name)) for name in fields])


class _Chunks:
    """A write-only file for pyarrow that keeps what it is given until drained."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def parquet_chunks(batches: Iterable[list[Row]], options: Options) -> Iterator[bytes]:
    fields = options.fields
    schema = arrow_schema(fields)
    pick = [EXPORT_COLUMNS.index(name) for name in fields]
    sink = _Chunks()
    writer = pq.ParquetWriter(
        pa.PythonFile(sink, mode="w"), schema, compression="zstd",
        use_dictionary=[name for name in fields if name in DICTIONARY_COLUMNS],
    )  # fmt: skip
    pending: list[Any] = []
    rows_pending = 0
    try:
        for rows in batches:
            if not rows:
                continue
            columns = [
                pa.array([row[i] for row in rows], type=schema.field(k).type)
                for k, i in enumerate(pick)
            ]
            pending.append(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows_pending += len(rows)
            if rows_pending >= options.parquet_row_group_rows:
                writer.write_table(pa.Table.from_batches(pending, schema=schema))
                pending, rows_pending = [], 0
                yield sink.drain()
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema=schema))
    finally:
        writer.close()
    yield sink.drain()
