"""Streaming readers for question/answer data sets.

Formats: `yahoo-csv` (the public Yahoo! Answers CSV: class, title, content, best
answer; no header), `csv` (a header with title, content, best_answer), `jsonl` (one
object per line with those keys) and `parquet` (those columns). Rows are read one at a
time (Parquet one record batch at a time), never the whole file; a bad row raises
DatasetError naming the line (or row) and the column.

Sources: `sample` (the data set shipped in this package, written for the project by
workers/scripts/make_sample_dataset.py), a file path, or an http(s) URL read as a
stream.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from typing import IO

import pyarrow.parquet as pq

SAMPLE = "sample"
COLUMNS = ("title", "content", "best_answer")
YAHOO_COLUMNS = ("class", "title", "content", "best_answer")

csv.field_size_limit(16 * 1024 * 1024)


class DatasetError(ValueError):
    """A data set that cannot be read, with where the problem is."""


@dataclass(frozen=True, slots=True)
class Row:
    row: int  # 0-based position in the data set
    title: str
    content: str
    best_answer: str


def read_rows(source: str, fmt: str = "yahoo-csv", limit: int = 0) -> Iterator[Row]:
    """Stream the data set's rows, at most `limit` of them (0 = all)."""
    rows = _rows(source, fmt)
    return islice(rows, limit) if limit > 0 else rows


def _rows(source: str, fmt: str) -> Iterator[Row]:
    if fmt == "parquet":
        yield from _parquet(source)
        return
    readers = {"yahoo-csv": _yahoo_csv, "csv": _headered_csv, "jsonl": _jsonl}
    if fmt not in readers:
        raise DatasetError(f"unknown data set format {fmt!r}; use one of {sorted(readers)}")
    with ExitStack() as stack:
        text = stack.enter_context(open_text(source, fmt))
        yield from readers[fmt](text, source)


def open_text(source: str, fmt: str) -> IO[str]:
    if source == SAMPLE:
        if fmt != "yahoo-csv":
            raise DatasetError("the sample data set is in yahoo-csv format")
        path = resources.files("qarun_workers") / "data" / "sample.csv"
        return io.TextIOWrapper(path.open("rb"), encoding="utf-8", newline="")
    if source.startswith(("http://", "https://")):
        response = urllib.request.urlopen(source, timeout=60)  # noqa: S310 - http(s) only
        return io.TextIOWrapper(response, encoding="utf-8", newline="")
    try:
        return open(source, encoding="utf-8", newline="")
    except OSError as error:
        raise DatasetError(f"cannot open data set {source}: {error.strerror}") from None


def _unescape(text: str) -> str:
    # The Yahoo! Answers dumps write line breaks as a literal backslash-n.
    return text.replace("\\n", "\n").strip()


def _yahoo_csv(text: IO[str], source: str) -> Iterator[Row]:
    reader = csv.reader(text)
    for index, fields in enumerate(reader):
        if len(fields) != len(YAHOO_COLUMNS):
            raise DatasetError(
                f"{source}:{reader.line_num}: expected {len(YAHOO_COLUMNS)} columns "
                f"{YAHOO_COLUMNS}, found {len(fields)}"
            )
        _, title, content, answer = (_unescape(f) for f in fields)
        yield _row(index, title, content, answer, f"{source}:{reader.line_num}")


def _headered_csv(text: IO[str], source: str) -> Iterator[Row]:
    reader = csv.DictReader(text)
    header = reader.fieldnames or []
    missing = [c for c in ("title", "best_answer") if c not in header]
    if missing:
        raise DatasetError(f"{source}:1: header lacks column {missing[0]!r} (found {header})")
    for index, record in enumerate(reader):
        where = f"{source}:{reader.line_num}"
        yield _row(
            index,
            record["title"] or "",
            record.get("content") or "",
            record["best_answer"] or "",
            where,
        )


def _jsonl(text: IO[str], source: str) -> Iterator[Row]:
    index = 0
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        where = f"{source}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected an object")
        for column in ("title", "best_answer"):
            if not isinstance(record.get(column), str):
                raise DatasetError(f"{where}: column {column!r} missing or not a string")
        yield _row(
            index, record["title"], str(record.get("content") or ""), record["best_answer"], where
        )
        index += 1


def _parquet(source: str) -> Iterator[Row]:
    try:
        parquet = pq.ParquetFile(source)
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot open Parquet data set {source}: {error}") from None
    names = parquet.schema_arrow.names
    for column in ("title", "best_answer"):
        if column not in names:
            raise DatasetError(f"{source}: Parquet file lacks column {column!r} (found {names})")
    columns = [c for c in COLUMNS if c in names]
    index = 0
    for batch in parquet.iter_batches(batch_size=1024, columns=columns):
        values = batch.to_pydict()
        contents = values.get("content") or [""] * batch.num_rows
        for title, content, answer in zip(
            values["title"], contents, values["best_answer"], strict=True
        ):
            yield _row(index, title or "", content or "", answer or "", f"{source}: row {index}")
            index += 1


def _row(index: int, title: str, content: str, answer: str, where: str) -> Row:
    if not title.strip() and not content.strip():
        raise DatasetError(f"{where}: column 'title' is empty and there is no content")
    return Row(index, title.strip(), content.strip(), answer.strip())
