"""Unit tests of the recipient-file parser: number normalisation, kinds and encodings, layouts, counts, chunks and
the errors that name the row."""

from __future__ import annotations

import io
from typing import Any

import openpyxl
import pytest

from magpie_gateway import recipient_file_parser as parser
from magpie_gateway.recipient_file_parser import RecipientFileError, normalise_mobile, parse


def run(data: bytes, **kwargs: Any) -> tuple[parser.ParsedFile, list[parser.Chunk]]:
    chunks: list[parser.Chunk] = []
    return parse(io.BytesIO(data), chunks.append, **kwargs), chunks


def refused(data: bytes, **kwargs: Any) -> RecipientFileError:
    with pytest.raises(RecipientFileError) as caught:
        run(data, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13900000001", "13900000001"),
        ("+86 139-0000-0001", "13900000001"),
        ("0086 13900000001", "13900000001"),
        ("8613900000001", "13900000001"),
        ("+44 7700 900123", "+447700900123"),
        ("0044 7700900123", "+447700900123"),
        ("12900000001", None),
        ("1390000000", None),
        ("+1", None),
        ("abc", None),
        ("", None),
    ],
)
def test_normalise_mobile(raw: str, expected: str | None) -> None:
    assert normalise_mobile(raw) == expected


def test_csv_with_header_counts_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser, "ROWS_PER_DOC", 2)
    data = "手机号,${name},sms_params_1,custom_url\n13900000001,甲,x,https://a.example/1\n\n"
    data += "13900000002,乙,y,\n+8613900000001,dup,z,\nnot-a-number,bad,w,\n13900000003,丙,v,\n"
    result, chunks = run(data.encode())
    assert (result.rows, result.valid, result.duplicates, result.invalid) == (5, 3, 1, 1)
    assert result.columns == ["name", "sms_params_1", "custom_url"]
    assert [c["mobiles"] for c in chunks] == [["13900000001", "13900000002"], ["13900000003"]]
    assert chunks[0]["values"] == {
        "name": ["甲", "乙"],
        "sms_params_1": ["x", "y"],
        "custom_url": ["https://a.example/1", ""],
    }


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_text_encodings(encoding: str) -> None:
    result, chunks = run("mobile\t姓名\n13900000001\t张三\n".encode(encoding))
    assert result.columns == ["姓名"] and chunks[0]["values"] == {"姓名": ["张三"]}


def test_headerless_numbers_and_semicolons() -> None:
    result, _ = run(b"13900000001\n13900000002\r\n13900000002\n")
    assert (result.rows, result.valid, result.duplicates, result.columns) == (3, 2, 1, [])
    result, _ = run(b"mobile;name\n13900000001;a\n")
    assert result.columns == ["name"]
    assert "header row" in refused(b"13900000001,extra\n").detail


def test_xlsx_first_sheet_with_numeric_cells() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([])
    sheet.append(["Mobile", "amount"])
    sheet.append([13900000001, 12])
    sheet.append([None, None])
    sheet.append(["+86 13900000002", 1.5])
    out = io.BytesIO()
    workbook.save(out)
    result, chunks = run(out.getvalue())
    assert (result.rows, result.valid, result.columns) == (2, 2, ["amount"])
    assert chunks[0]["mobiles"] == ["13900000001", "13900000002"]
    assert chunks[0]["values"] == {"amount": ["12", "1.5"]}


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "KM.90016414", "empty"),
        (b"\n \n", "KM.90016414", "no row"),
        (b"mobile\n", "KM.90016414", "no row"),
        (b"\xff\xfe\x00\x00", "KM.00000515", "UTF-16"),
        ("mobile\n13900000001,é\n".encode("cp1252") + b"\xe9,\n", "KM.00000515", "GB18030"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "KM.00000430", "png"),
        (b"mobile\n\x00\x00", "KM.00000430", "binary"),
        (b"PK\x03\x04broken", "KM.00000516", "xlsx"),
        (b"name\nx\n", "KM.00000516", "row 1: no mobile column"),
        (b"mobile,,x\n13900000001,a,b\n", "KM.00000516", "column 2 has no name"),
        (b"mobile,a,${a}\n1,2,3\n", "KM.00000516", "repeated"),
        (b"mobile\n13900000001\n13900000002,oops\n", "KM.00000516", "row 3 has 2 cells"),
        (b'mobile,a\n13900000001,"never closed\n', "KM.00000516", "row"),
        (b"mobile,a\n13900000001," + b"x" * 501 + b"\n", "KM.00000516", "row 2: a has more than 500"),
        (b"mobile,custom_url\n13900000001,ftp://x\n", "KM.00000516", "row 2: custom_url"),
    ],
)
def test_refused(data: bytes, code: str, words: str) -> None:
    error = refused(data)
    assert error.code.code == code and words in error.detail


def test_too_many_rows_counts_rows_of_numbers_only() -> None:
    assert refused(b"mobile\n" + b"13900000001\n" * 4, max_rows=3).code.code == "KM.90016301"
    result, _ = run(b"mobile\n\n" + b"13900000001\n" * 3, max_rows=3)
    assert (result.rows, result.valid) == (3, 1)
