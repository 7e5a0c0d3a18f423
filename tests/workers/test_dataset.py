"""The data set readers: four formats, streaming, and errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qarun_workers.dataset import DatasetError, read_rows


def test_sample_is_a_few_hundred_complete_rows() -> None:
    rows = list(read_rows("sample"))
    assert 250 <= len(rows) <= 1000
    assert all(r.title and r.best_answer for r in rows)
    assert len({r.title for r in rows}) == len(rows)  # the simulator keys on titles


def test_yahoo_csv_unescapes_and_names_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "yahoo.csv"
    good.write_text('"3","Why?","line one\\nline two","Because."\n"1","Q2","","A2"\n')
    rows = list(read_rows(str(good)))
    assert rows[0].content == "line one\nline two"
    assert (rows[1].row, rows[1].best_answer) == (1, "A2")
    bad = tmp_path / "bad.csv"
    bad.write_text('"1","t","c","a"\n"2","only three","c"\n')
    with pytest.raises(DatasetError, match=r"bad.csv:2: expected 4 columns"):
        list(read_rows(str(bad)))


def test_headered_csv_and_missing_column(tmp_path: Path) -> None:
    good = tmp_path / "h.csv"
    good.write_text("title,best_answer,content\nWhat?,That.,\n")
    assert next(read_rows(str(good), "csv")).best_answer == "That."
    bad = tmp_path / "nohead.csv"
    bad.write_text("question,answer\nq,a\n")
    with pytest.raises(DatasetError, match="lacks column 'title'"):
        list(read_rows(str(bad), "csv"))


def test_jsonl_streams_and_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    lines = [json.dumps({"title": f"q{n}", "best_answer": "a"}) for n in range(5)]
    path.write_text("\n".join([*lines, '{"title": "x"}']) + "\n")
    rows = read_rows(str(path), "jsonl", limit=3)
    assert [r.title for r in rows] == ["q0", "q1", "q2"]
    with pytest.raises(DatasetError, match=r"q.jsonl:6: column 'best_answer'"):
        list(read_rows(str(path), "jsonl"))


def test_parquet_reads_in_batches_and_checks_columns(tmp_path: Path) -> None:
    path = tmp_path / "q.parquet"
    table = pa.table({"title": [f"q{n}" for n in range(3000)], "best_answer": ["a"] * 3000})
    pq.write_table(table, path, row_group_size=500)
    rows = list(read_rows(str(path), "parquet"))
    assert len(rows) == 3000
    assert (rows[2999].row, rows[2999].content) == (2999, "")
    pq.write_table(pa.table({"title": ["q"]}), tmp_path / "bad.parquet")
    with pytest.raises(DatasetError, match="lacks column 'best_answer'"):
        list(read_rows(str(tmp_path / "bad.parquet"), "parquet"))


def test_missing_file_and_unknown_format() -> None:
    with pytest.raises(DatasetError, match="cannot open"):
        list(read_rows("/nonexistent/file.csv"))
    with pytest.raises(DatasetError, match="unknown data set format"):
        list(read_rows("sample", "xml"))
