"""What every download must do with text a spreadsheet could run as a formula: write it
with a leading ``'`` (OWASP, "CSV injection"), in CSV and in Excel alike."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

#: Values a user could type into a tag name, a reason or an identity.
HOSTILE = ('=HYPERLINK("x")', "+cmd|' /C calc'!A0", "@SUM(1)", "-1+2")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cells(content: bytes) -> list[str]:
    assert content.startswith(b"\xef\xbb\xbf"), content[:10]
    return [cell for row in csv.reader(io.StringIO(content.decode("utf-8-sig"))) for cell in row]


def xlsx_texts(content: bytes) -> list[str]:
    """The text cells of every sheet; none of its cells is a formula."""
    book = load_workbook(io.BytesIO(content))
    texts = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts.append(cell.value)
    return texts


def _assert_guarded(cells: list[str], values) -> None:
    for value in values:
        assert "'" + value in cells, (value, cells)
    runnable = [cell for cell in cells if cell.startswith(FORMULA_STARTS) and any(v in cell for v in values)]
    assert runnable == []


def assert_csv_guarded(content: bytes, values=HOSTILE) -> None:
    _assert_guarded(csv_cells(content), values)


def assert_xlsx_guarded(content: bytes, values=HOSTILE) -> None:
    _assert_guarded(xlsx_texts(content), values)
