"""Spreadsheet downloads: the one CSV writer and the one Excel writer of every export.

Text a spreadsheet could take for a formula — a cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return — is written with a leading ``'``, as OWASP advises
against "CSV injection": Excel and WPS show the text a user typed and never run it.
Numbers stay numbers (``-1`` is a number, ``"-1+2"`` is text):

>>> guard('=HYPERLINK("x")'), guard("-1+2"), guard("到店次数")
('\\'=HYPERLINK("x")', "'-1+2", '到店次数')
>>> csv_bytes(["name", "n"], [["@SUM(1)", -1], [None, 0.5]]).decode("utf-8-sig")
"name,n\\r\\n'@SUM(1),-1\\r\\n,0.5\\r\\n"

CSV is UTF-8 with a byte order mark, so that Excel opens Chinese correctly; a large one
is streamed a piece at a time (:func:`csv_chunks`, :func:`streaming_attachment`). Workbooks
are written by openpyxl in write-only mode (memory does not grow with the rows): each
sheet with a bold, frozen header row and an autofilter, its columns as wide as the
content of the first rows. Cells are typed: :class:`Percent` shows as a percentage,
dates and (naive, local) times as such, ``None`` as an empty cell.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JSON = "application/json; charset=utf-8"
CONTENT_TYPES = {"csv": CSV, "xlsx": XLSX, "json": JSON}
#: What a formula may start with (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

MIN_WIDTH, MAX_WIDTH = 8, 60
#: Columns are as wide as the content of this many first rows.
WIDTH_SAMPLE = 500
HEADER_FILL = "DDEBF7"

_NUMBERS = (int, float, Decimal)


class Percent(float):
    """A share (0–1) shown as a percentage: ``0.123`` → 12.3%."""


class Sheet(NamedTuple):
    """One sheet of a workbook: a title, a header row (``None``: none) and the rows."""

    title: str
    headers: Sequence | None
    rows: Iterable[Sequence]


def guard(text: str) -> str:
    """``text`` as a spreadsheet must show it: with a leading ``'`` if it could be taken
    for a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return guard(value)
    if isinstance(value, Percent):
        return f"{value:.1%}"
    if isinstance(value, _NUMBERS):  # bool too
        return value
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return guard(str(value))


def csv_chunks(headers: Sequence | None, rows: Iterable[Sequence], rows_per_chunk: int = 1000):
    """:func:`csv_bytes` a piece at a time (the byte order mark and header first, then
    ``rows_per_chunk`` rows a piece), for a download streamed as ``rows`` are read:
    the same guard on every text cell, memory that does not grow with the rows."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    if headers is not None:
        writer.writerow([_csv_cell(value) for value in headers])
    for count, row in enumerate(rows, start=1):
        writer.writerow([_csv_cell(value) for value in row])
        if count % rows_per_chunk == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    if out.tell():
        yield out.getvalue().encode("utf-8")


def csv_bytes(headers: Sequence | None, rows: Iterable[Sequence]) -> bytes:
    """A CSV file of ``headers`` (``None``: no header row) and ``rows``, in UTF-8 with
    a byte order mark; text that could be a formula is guarded."""
    return b"".join(csv_chunks(headers, rows))


def _display_width(value) -> int:
    if value is None:
        return 0
    if isinstance(value, Percent):
        return 7
    if isinstance(value, dt.datetime):
        return 16
    if isinstance(value, dt.date):
        return 10
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(value))


def _widths(headers: Sequence | None, sample: list[Sequence]) -> list[int]:
    columns = max([len(headers or ()), *(len(row) for row in sample)])
    widths = []
    for column in range(columns):
        values = [row[column] for row in sample if column < len(row)]
        if headers is not None and column < len(headers):
            values.append(headers[column])
        width = max([_display_width(value) for value in values], default=0)
        widths.append(min(max(width + 2, MIN_WIDTH), MAX_WIDTH))
    return widths


def _xlsx_cell(value, illegal: re.Pattern) -> tuple[object, str | None]:
    """``(value, number format or None)`` of a cell; ``illegal``: the characters a
    workbook cannot hold, left out before text is guarded."""
    if value is None or isinstance(value, bool):
        return value, None
    if isinstance(value, Percent):
        return float(value), "0.0%"
    if isinstance(value, _NUMBERS):
        return value, None
    if isinstance(value, dt.datetime):
        return value, "yyyy-mm-dd hh:mm"
    if isinstance(value, dt.date):
        return value, "yyyy-mm-dd"
    return guard(illegal.sub("", str(value))), None


def _write_sheet(book, sheet: Sheet) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    out = book.create_sheet(sheet.title[:31])

    def cells(row: Sequence) -> list:
        values = []
        for value in row:
            value, number_format = _xlsx_cell(value, ILLEGAL_CHARACTERS_RE)
            if number_format is not None:
                value = WriteOnlyCell(out, value=value)
                value.number_format = number_format
            values.append(value)
        return values

    rows = iter(sheet.rows)
    sample = list(itertools.islice(rows, WIDTH_SAMPLE))
    # Widths and the frozen row come before the first row in the file.
    for column, width in enumerate(_widths(sheet.headers, sample), start=1):
        out.column_dimensions[get_column_letter(column)].width = width
    if sheet.headers is not None:
        out.freeze_panes = "A2"
        bold, fill = Font(bold=True), PatternFill("solid", start_color=HEADER_FILL)
        middle = Alignment(vertical="center")
        header = []
        for value in sheet.headers:
            cell = WriteOnlyCell(out, value=_xlsx_cell(value, ILLEGAL_CHARACTERS_RE)[0])
            cell.font, cell.fill, cell.alignment = bold, fill, middle
            header.append(cell)
        out.append(header)
    count = 0
    for row in itertools.chain(sample, rows):
        out.append(cells(row))
        count += 1
    if sheet.headers:
        out.auto_filter.ref = f"A1:{get_column_letter(len(sheet.headers))}{count + 1}"


def xlsx_bytes(*sheets: Sheet) -> bytes:
    """An Excel workbook of ``sheets``; text that could be a formula is guarded."""
    from openpyxl import Workbook  # a third of a second to import: only when asked

    book = Workbook(write_only=True)
    for sheet in sheets:
        _write_sheet(book, sheet)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _content_type(filename: str) -> str:
    return CONTENT_TYPES[filename.rsplit(".", 1)[-1]]


def _disposition(response, filename: str):
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


def attachment(content: bytes, filename: str) -> HttpResponse:
    """``content`` as a file download named ``filename`` (``.csv``, ``.xlsx`` or ``.json``;
    names that are not ASCII are encoded as RFC 6266 says)."""
    return _disposition(HttpResponse(content, content_type=_content_type(filename)), filename)


def streaming_attachment(chunks: Iterable[bytes], filename: str) -> StreamingHttpResponse:
    """:func:`attachment` of content sent as it is made (``chunks``: :func:`csv_chunks`)."""
    return _disposition(StreamingHttpResponse(chunks, content_type=_content_type(filename)), filename)
