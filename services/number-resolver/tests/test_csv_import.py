"""CSV upload parsing (pure): media type, charset, size limit, header rules, line numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from magpie_number_resolver.csv_import import CsvRows, Rejection, Row, UploadError, charset_of, decode, read_limited

REQUIRED = ("mobile", "brand")
OPTIONAL = ("plugin_version",)


def rows_of(text: str) -> list[Row | Rejection]:
    return list(CsvRows(text, REQUIRED, OPTIONAL))


def test_rows_carry_physical_line_numbers() -> None:
    text = 'Mobile , BRAND\n13800138000,HUAWEI\n\n"13800138001","multi\nline"\n13800138002\n13800138003,OPPO\n'
    items = rows_of(text)
    assert items == [
        Row(2, {"mobile": "13800138000", "brand": "HUAWEI"}),
        Row(4, {"mobile": "13800138001", "brand": "multi\nline"}),
        Rejection(6, "expected 2 fields, got 1"),
        Row(7, {"mobile": "13800138003", "brand": "OPPO"}),
    ]


def test_nul_bytes_reach_the_field_rules() -> None:
    # Python's csv module passes NUL through; the device field rules reject control characters per row.
    rows = rows_of("mobile,brand\n13800138000,HUA\x00WEI\n")
    assert rows == [Row(2, {"mobile": "13800138000", "brand": "HUA\x00WEI"})]


def test_crlf_and_leading_blank_lines() -> None:
    items = rows_of("\r\n\r\nmobile,brand,plugin_version\r\n13800138000,HUAWEI,11.0.8.303\r\n")
    assert items == [Row(4, {"mobile": "13800138000", "brand": "HUAWEI", "plugin_version": "11.0.8.303"})]


@pytest.mark.parametrize(
    ("text", "status", "code", "message"),
    [
        ("", 400, "KM.90016414", "empty"),
        ("\n\n", 400, "KM.90016414", "empty"),
        ("mobile,brand,colour\n", 400, "KM.00000400", "unknown column(s) 'colour'"),
        ("mobile,brand,brand\n", 400, "KM.00000400", "repeated column(s) brand"),
        ("mobile,plugin_version\n", 400, "KM.00000400", "missing required column(s) brand"),
        ('mobile,brand\n13800138000,"HUA"WEI\n', 400, "KM.00000400", "line 2: malformed CSV"),
    ],
)
def test_unusable_uploads(text: str, status: int, code: str, message: str) -> None:
    with pytest.raises(UploadError) as caught:
        rows_of(text)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert message in caught.value.message


def test_charset_from_content_type() -> None:
    assert charset_of("text/csv") == "utf-8-sig"
    assert charset_of("text/csv; charset=UTF-8") == "utf-8-sig"
    assert charset_of('text/csv; charset="GBK"') == "gbk"
    assert charset_of("application/csv;charset=gb18030") == "gb18030"
    with pytest.raises(UploadError) as caught:
        charset_of("application/json")
    assert caught.value.status == 415
    with pytest.raises(UploadError) as caught:
        charset_of(None)
    assert caught.value.status == 415
    with pytest.raises(UploadError, match="unknown charset"):
        charset_of("text/csv; charset=klingon")


def test_decoding_errors_name_offset_and_line() -> None:
    assert decode("\ufeffmobile,brand\n".encode(), "utf-8-sig") == "mobile,brand\n"
    assert decode("mobile,brand\n13800138000,华为\n".encode("gbk"), "gbk").endswith("华为\n")
    body = "mobile,brand\n13800138000,华为\n".encode("gbk")
    with pytest.raises(UploadError) as caught:
        decode(body, "utf-8-sig")
    assert caught.value.status == 400
    assert "not valid utf-8" in caught.value.message and "line 2" in caught.value.message


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_size_limit_from_header_and_from_the_stream() -> None:
    assert await read_limited(_chunks(b"ab", b"cd"), "4", 4) == b"abcd"
    with pytest.raises(UploadError) as caught:
        await read_limited(_chunks(b"x"), str(51 * 1024 * 1024), 50 * 1024 * 1024)
    assert caught.value.status == 413 and "50 MB" in caught.value.message
    with pytest.raises(UploadError) as caught:
        await read_limited(_chunks(b"abc", b"de"), None, 4)  # no Content-Length: counted while streaming
    assert caught.value.status == 413
    with pytest.raises(UploadError) as caught:
        await read_limited(_chunks(b"abc"), "many", 4)
    assert caught.value.status == 400
