"""The one CSV and Excel writer: formulas guarded, numbers kept, cells typed, the header
bold and frozen, a workbook of any number of rows."""

from __future__ import annotations

import datetime as dt
import doctest
import io
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from openpyxl import load_workbook

from tagportal.core import spreadsheets
from tagportal.core.spreadsheets import Percent, Sheet, csv_bytes, guard, xlsx_bytes

from ..formula_guard import HOSTILE, assert_csv_guarded, assert_xlsx_guarded, csv_cells


def test_the_module_examples_hold():
    assert doctest.testmod(spreadsheets).failed == 0


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(1)", "'@SUM(1)"),
        ("-1+2", "'-1+2"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("到店次数", "到店次数"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_guard(text, shown):
    assert guard(text) == shown


def test_csv_guards_text_and_keeps_numbers():
    content = csv_bytes(
        ["name", "n"],
        [[value, -index] for index, value in enumerate(HOSTILE, start=1)] + [[gettext_lazy("=lazy"), -0.5]],
    )
    assert_csv_guarded(content, [*HOSTILE, "=lazy"])
    assert csv_cells(content)[3::2] == ["-1", "-2", "-3", "-4", "-0.5"]  # numbers, not text


def test_csv_cells_by_type():
    row = [
        None,
        True,
        Percent(0.1234),
        Decimal("1.50"),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        dt.date(2026, 1, 2),
    ]
    assert csv_cells(csv_bytes(None, [row])) == [
        "",
        "True",
        "12.3%",
        "1.50",
        "2026-01-02 03:04",
        "2026-01-02",
    ]


def test_csv_is_utf8_with_a_bom_and_crlf():
    content = csv_bytes(["编码"], [["到店"]])
    assert content == "\ufeff编码\r\n到店\r\n".encode()


def test_xlsx_guards_text_and_keeps_numbers():
    rows = [[value, -index, "x\x01y"] for index, value in enumerate(HOSTILE, start=1)]
    content = xlsx_bytes(Sheet("数据", ["name", "n", "text"], rows), Sheet("about", None, [["=x", "@y"]]))
    assert_xlsx_guarded(content, [*HOSTILE, "=x", "@y"])
    sheet = load_workbook(io.BytesIO(content))["数据"]
    assert [cell.value for cell in sheet["B"][1:]] == [-1, -2, -3, -4]
    assert all(cell.data_type == "n" for cell in sheet["B"][1:])
    assert sheet["C2"].value == "xy"  # a character a workbook cannot hold is left out


def test_xlsx_layout_and_types():
    headers = ["code", "coverage", "at", "day", "none", "flag"]
    row = [
        "yimei_visit_dao_dian_ci_shu",
        Percent(0.25),
        dt.datetime(2026, 1, 2, 3, 4),
        dt.date(2026, 1, 2),
        None,
        False,
    ]
    book = load_workbook(
        io.BytesIO(xlsx_bytes(Sheet("标签字典", headers, [row]), Sheet("info", None, [["a", "b"]])))
    )
    sheet, info = book.worksheets
    assert sheet.title == "标签字典"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:F2"
    assert all(cell.font.bold for cell in sheet[1])
    assert [cell.value for cell in sheet[1]] == headers
    code, coverage, at, day, nothing, flag = sheet[2]
    assert coverage.value == 0.25 and coverage.number_format == "0.0%"
    assert at.value == dt.datetime(2026, 1, 2, 3, 4) and at.number_format == "yyyy-mm-dd hh:mm"
    assert day.value.date() == dt.date(2026, 1, 2) and day.number_format == "yyyy-mm-dd"
    assert nothing.value is None and flag.value is False
    assert sheet.column_dimensions["A"].width == len(code.value) + 2
    assert sheet.column_dimensions["E"].width == spreadsheets.MIN_WIDTH
    assert info.freeze_panes is None and not info["A1"].font.bold
    assert [[cell.value for cell in row] for row in info.iter_rows()] == [["a", "b"]]


def test_xlsx_of_more_rows_than_the_width_sample_from_a_generator():
    count = spreadsheets.WIDTH_SAMPLE + 10
    rows = ([number, "宽" * 40 if number == count - 1 else "x"] for number in range(count))
    sheet = load_workbook(io.BytesIO(xlsx_bytes(Sheet("s", ["n", "text"], rows)))).active
    assert sheet.max_row == count + 1
    assert sheet.auto_filter.ref == f"A1:B{count + 1}"
    assert sheet.column_dimensions["B"].width == spreadsheets.MIN_WIDTH  # only the first rows count


def test_attachment():
    response = spreadsheets.attachment(b"x", "tag-dictionary-2026-01-02.xlsx")
    assert response["Content-Type"] == spreadsheets.XLSX
    assert response["Content-Disposition"] == 'attachment; filename="tag-dictionary-2026-01-02.xlsx"'
    chinese = spreadsheets.attachment(b"x", "油皮近访客-oneid.csv")
    assert chinese["Content-Type"] == "text/csv; charset=utf-8"
    assert "filename*=utf-8''" in chinese["Content-Disposition"]


def test_csv_chunks_stream_the_same_guarded_file_in_pieces():
    rows = [[number, HOSTILE[number % len(HOSTILE)]] for number in range(2_500)]
    chunks = list(spreadsheets.csv_chunks(["n", "text"], iter(rows), rows_per_chunk=1000))
    assert len(chunks) == 3  # the header and 1,000 rows, 1,000 rows, 500 rows
    assert b"".join(chunks) == csv_bytes(["n", "text"], rows)
    assert_csv_guarded(b"".join(chunks))
    assert list(spreadsheets.csv_chunks(None, [])) == ["\ufeff".encode()]


def test_streaming_attachment_and_json():
    response = spreadsheets.streaming_attachment(spreadsheets.csv_chunks(["编码"], [["=x"]]), "人群.csv")
    assert response.streaming and response["Content-Type"] == spreadsheets.CSV
    assert "filename*=utf-8''" in response["Content-Disposition"]
    assert_csv_guarded(b"".join(response.streaming_content), ["=x"])
    data = spreadsheets.attachment(b"{}", "report.json")
    assert data["Content-Type"] == "application/json; charset=utf-8"
    assert data["Content-Disposition"] == 'attachment; filename="report.json"'
