"""Uploaded files, read safely: a size limit on every upload, and readers of CSV and
Excel files that check their row and column caps before they allocate.

A file from a user may claim anything: an ``.xlsx`` whose ``<dimension>`` says
A1:XFD1048576, a zip entry that inflates to gigabytes, a CSV of one endless line.
Nothing here trusts what a file declares about itself:

- :class:`MaxUploadSizeHandler` (first in ``FILE_UPLOAD_HANDLERS``) stops storing an
  uploaded file once it passes ``TAGPORTAL_MAX_UPLOAD_BYTES``; the form or serializer
  then sees an :class:`OversizedUpload` (empty, ``size`` over the limit) and
  :func:`check_size` refuses it with a clear message instead of a 500.
- :func:`open_zip` refuses a file that is not a zip, or one whose entries would inflate
  past :data:`ZIP_LIMITS` (each entry's declared size, their total, the compression
  ratio). :mod:`zipfile` never inflates an entry past its declared size, so the
  declared sizes bound what is read.
- :func:`xlsx_rows` scans the first sheet's XML as a stream (no DTDs or entities) for
  its real extent (the last row and column holding a value) and refuses it past the
  caps; only then does openpyxl, in read-only mode with the declared dimension
  discarded, read the values of that extent.
- :func:`csv_rows` reads a CSV row by row and stops as soon as a cap is passed.

Callers turn :class:`UploadError` into their own 400 answer.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.utils.translation import gettext as _

#: The most cells an Excel row can hold (column XFD).
EXCEL_MAX_COLUMNS = 16384
#: The most characters one CSV row may span (a guard against one endless line).
CSV_MAX_ROW_CHARS = 2 * 1024 * 1024
#: The most bytes of a CSV header line.
CSV_MAX_HEADER_BYTES = 64 * 1024
#: The encodings tried for CSV files, in order (Excel in China saves GB18030).
CSV_ENCODINGS = ("utf-8-sig", "gb18030")


class UploadError(ValueError):
    """An uploaded file that is refused: too big, not of its type, broken, or past a cap."""

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------------------
# Size


def max_upload_bytes() -> int:
    return int(getattr(settings, "TAGPORTAL_MAX_UPLOAD_BYTES", 20 * 1024 * 1024))


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g}"


def too_large_message(limit: int | None = None) -> str:
    limit = max_upload_bytes() if limit is None else limit
    return _("The file is larger than %(mb)s MB; split it into smaller files.") % {"mb": _megabytes(limit)}


class OversizedUpload(UploadedFile):
    """What a form sees of a file that passed the upload limit: no content, and a
    ``size`` above the limit (the bytes received before the upload was cut off)."""

    oversized = True

    def __init__(self, name: str, size: int, content_type: str | None = None):
        super().__init__(io.BytesIO(b""), name=name, content_type=content_type, size=size)

    def open(self, mode=None):
        self.file.seek(0)
        return self


class MaxUploadSizeHandler(FileUploadHandler):
    """Counts the bytes of each uploaded file; past ``TAGPORTAL_MAX_UPLOAD_BYTES`` it keeps
    the rest from the other handlers (nothing more is stored in memory or on disk) and
    answers an :class:`OversizedUpload` for the file."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0
        self.oversized = False
        self.limit = max_upload_bytes()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.oversized = True
        return None if self.oversized else raw_data

    def file_complete(self, file_size):
        if not self.oversized:
            return None  # the next handler (memory or temporary file) has the file
        return OversizedUpload(self.file_name, self.received, self.content_type)


def check_size(upload, limit: int | None = None) -> None:
    """Refuse an upload over the limit (``TAGPORTAL_MAX_UPLOAD_BYTES`` unless given)."""
    limit = max_upload_bytes() if limit is None else limit
    size = getattr(upload, "size", None)
    if getattr(upload, "oversized", False) or (size is not None and size > limit):
        raise UploadError(too_large_message(limit), code="too_large")


def head(source, length: int = 8) -> bytes:
    """The first bytes of a binary file object, leaving it at the start."""
    source.seek(0)
    data = source.read(length)
    source.seek(0)
    return data


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


# ---------------------------------------------------------------------------
# Zip containers (xlsx)


@dataclass(frozen=True)
class ZipLimits:
    #: declared uncompressed size of one worksheet or the shared strings
    max_sheet_bytes: int = 32 * 1024 * 1024
    #: declared uncompressed size of any other entry (styles, workbook, rels: parsed whole)
    max_entry_bytes: int = 8 * 1024 * 1024
    #: declared uncompressed size of all entries together
    max_total_bytes: int = 64 * 1024 * 1024
    #: uncompressed / compressed, for entries over ``ratio_from_bytes``
    max_ratio: int = 200
    ratio_from_bytes: int = 1024 * 1024
    max_entries: int = 1000


ZIP_LIMITS = ZipLimits()
_SHEETS = re.compile(r"^xl/worksheets/[^/]+\.xml$", re.IGNORECASE)
_BIG_PARTS = re.compile(r"^xl/(worksheets/[^/]+\.xml|sharedStrings\.xml)$", re.IGNORECASE)


def open_zip(source, limits: ZipLimits = ZIP_LIMITS, *, kind: str = "") -> zipfile.ZipFile:
    """The file as a zip archive whose entries are within ``limits``, or :class:`UploadError`."""
    kind = kind or _("Excel (.xlsx)")
    broken = _("The file is not a valid %(kind)s file (it may be damaged or of another type).") % {
        "kind": kind
    }
    if not is_zip(head(source, 4)):
        raise UploadError(broken, code="not_zip")
    try:
        archive = zipfile.ZipFile(source)
        entries = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
    ) as exc:
        raise UploadError(broken, code="bad_zip") from exc
    too_big = _("The file unpacks to more than %(mb)s MB; it is not a spreadsheet this portal reads.")
    if len(entries) > limits.max_entries:
        raise UploadError(broken, code="bad_zip")
    total = 0
    for entry in entries:
        limit = limits.max_sheet_bytes if _BIG_PARTS.match(entry.filename) else limits.max_entry_bytes
        if entry.file_size > limit:
            raise UploadError(too_big % {"mb": _megabytes(limit)}, code="zip_bomb")
        if entry.file_size > limits.ratio_from_bytes and entry.file_size > limits.max_ratio * max(
            entry.compress_size, 1
        ):
            raise UploadError(
                _(
                    "The file is compressed more than %(ratio)s to 1; it is not a spreadsheet this portal reads."
                )
                % {"ratio": limits.max_ratio},
                code="zip_bomb",
            )
        if entry.flag_bits & 0x1:
            raise UploadError(_("The file is encrypted; save it without a password."), code="encrypted")
        total += entry.file_size
    if total > limits.max_total_bytes:
        raise UploadError(too_big % {"mb": _megabytes(limits.max_total_bytes)}, code="zip_bomb")
    return archive


# ---------------------------------------------------------------------------
# Excel


def too_many_rows_message(limit: int) -> str:
    return _("The file has more than %(n)s rows; split it into smaller files.") % {"n": f"{limit:,}"}


def too_many_columns_message(limit: int) -> str:
    return _("The file has more than %(n)s columns.") % {"n": f"{limit:,}"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_COLUMN = re.compile(r"^([A-Za-z]{1,3})")


def _column_number(reference: str) -> int | None:
    match = _COLUMN.match(reference or "")
    if not match:
        return None
    number = 0
    for letter in match.group(1).upper():
        number = number * 26 + ord(letter) - 64
    return number


@dataclass
class _Budget:
    """Row and cell elements left to read in all sheets of a workbook (values or not:
    openpyxl parses every one of them)."""

    rows: int
    cells: int


def _scan_sheet(stream, *, max_rows: int, max_columns: int, budget: _Budget) -> tuple[int, int]:
    """The real extent of a worksheet's XML (last row and last column holding a value),
    refusing it as soon as a value lies past the caps or the workbook holds more row or
    cell elements than the caps allow. Streams; keeps no rows."""
    from defusedxml.ElementTree import iterparse

    last_row = last_column = 0
    row_number = 0
    column = 0
    cells = 0
    has_value = False
    parent = None
    try:
        for event, element in iterparse(stream, events=("start", "end")):
            name = _local(element.tag)
            if event == "start":
                if name == "sheetData":
                    parent = element
                elif name == "row":
                    budget.rows -= 1
                    if budget.rows < 0:
                        raise UploadError(too_many_rows_message(max_rows - 1), code="too_many_rows")
                    given = element.get("r")
                    row_number = int(given) if given and given.isdigit() else row_number + 1
                    column = cells = 0
                elif name == "c":
                    cells += 1
                    budget.cells -= 1
                    if cells > EXCEL_MAX_COLUMNS or budget.cells < 0:
                        raise UploadError(too_many_columns_message(max_columns), code="too_many_columns")
                    given = _column_number(element.get("r", ""))
                    column = given if given is not None else column + 1
                    has_value = False
                elif name in ("v", "is", "f"):
                    has_value = True
                continue
            if name == "c":
                if has_value:
                    if column > max_columns:
                        raise UploadError(too_many_columns_message(max_columns), code="too_many_columns")
                    if row_number > max_rows:
                        raise UploadError(too_many_rows_message(max_rows - 1), code="too_many_rows")
                    last_row = max(last_row, row_number)
                    last_column = max(last_column, column)
                element.clear()
            elif name == "row":
                element.clear()
                if parent is not None:
                    parent.remove(element)
    except UploadError:
        raise
    except Exception as exc:  # malformed XML, DTDs and entities (defusedxml), a broken zip stream
        raise UploadError(
            _("The Excel file cannot be read: %(error)s") % {"error": type(exc).__name__}, code="bad_xlsx"
        ) from exc
    return last_row, last_column


def _scan_strings(stream, *, max_strings: int) -> None:
    from defusedxml.ElementTree import iterparse

    count = 0
    try:
        for _event, element in iterparse(stream, events=("end",)):
            if _local(element.tag) == "si":
                count += 1
                if count > max_strings:
                    raise UploadError(
                        _("The file holds more text than %(n)s cells.") % {"n": f"{max_strings:,}"},
                        code="too_many_strings",
                    )
                element.clear()
    except UploadError:
        raise
    except Exception as exc:
        raise UploadError(
            _("The Excel file cannot be read: %(error)s") % {"error": type(exc).__name__}, code="bad_xlsx"
        ) from exc


def xlsx_rows(source, *, max_rows: int, max_columns: int, limits: ZipLimits = ZIP_LIMITS) -> list[list]:
    """The rows of the first sheet of an ``.xlsx`` file (the header is the first row), at
    most ``max_rows`` rows (header included) of at most ``max_columns`` values each.

    Blank trailing cells are kept as ``None`` up to the last column holding a value.
    """
    archive = open_zip(source, limits)
    names = {info.filename for info in archive.infolist()}
    if "xl/sharedStrings.xml" in names:
        with archive.open("xl/sharedStrings.xml") as stream:
            _scan_strings(stream, max_strings=max_rows * max_columns)
    # Every sheet before openpyxl opens the workbook: opening parses each sheet whole
    # when it has no <dimension>.
    budget = _Budget(rows=max_rows, cells=max_rows * max_columns)
    extents = {}
    for name in sorted(n for n in names if _SHEETS.match(n)):
        with archive.open(name) as stream:
            extents[name] = _scan_sheet(stream, max_rows=max_rows, max_columns=max_columns, budget=budget)
    from openpyxl import load_workbook

    try:
        book = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:
        raise UploadError(
            _("The Excel file cannot be read: %(error)s") % {"error": type(exc).__name__}, code="bad_xlsx"
        ) from exc
    try:
        if not book.worksheets:
            return []
        sheet = book.worksheets[0]
        path = getattr(sheet, "_worksheet_path", None)
        if path not in extents:
            raise UploadError(
                _("The Excel file cannot be read: %(error)s") % {"error": "worksheet"}, code="bad_xlsx"
            )
        last_row, last_column = extents[path]
        if not last_row:
            return []
        sheet.reset_dimensions()  # never the declared <dimension>
        try:
            return [
                list(row)
                for row in sheet.iter_rows(
                    min_row=1, max_row=last_row, min_col=1, max_col=last_column, values_only=True
                )
            ]
        except Exception as exc:
            raise UploadError(
                _("The Excel file cannot be read: %(error)s") % {"error": type(exc).__name__}, code="bad_xlsx"
            ) from exc
    finally:
        book.close()
        archive.close()


# ---------------------------------------------------------------------------
# CSV


class _Binary(io.RawIOBase):
    """Any object with ``read`` (an uploaded file) as a raw stream that TextIOWrapper can
    wrap and leave open."""

    def __init__(self, source):
        self.source = source

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self):  # the caller owns the file
        pass


def text_lines(source, encoding: str) -> Iterator[str]:
    """Lines of a binary file decoded as ``encoding`` (strict), read in chunks."""
    source.seek(0)
    stream = io.TextIOWrapper(io.BufferedReader(_Binary(source), 64 * 1024), encoding=encoding, newline="")
    yield from stream


def _bounded(lines: Iterator[str], counter: list[int]) -> Iterator[str]:
    for line in lines:
        counter[0] += len(line)
        if counter[0] > CSV_MAX_ROW_CHARS:
            raise UploadError(
                _("A row of the file is longer than %(n)s characters.") % {"n": f"{CSV_MAX_ROW_CHARS:,}"},
                code="row_too_long",
            )
        yield line


def csv_rows(source, *, max_rows: int, max_columns: int, encodings=CSV_ENCODINGS) -> list[list[str]]:
    """The rows of a CSV file (the header is the first row; a blank line is an empty
    row, so rows keep their numbers), stopping with an :class:`UploadError` as soon as it
    has more than ``max_rows`` rows (header included) or a row has a value past
    ``max_columns``. Tries each encoding in turn."""
    last = None
    for encoding in encodings:
        try:
            return _csv_rows(source, encoding, max_rows=max_rows, max_columns=max_columns)
        except UnicodeDecodeError as exc:
            last = exc
            continue
    raise UploadError(_("The file is neither UTF-8 nor GB18030 text."), code="encoding") from last


def _csv_rows(source, encoding: str, *, max_rows: int, max_columns: int) -> list[list[str]]:
    counter = [0]
    reader = csv.reader(_bounded(text_lines(source, encoding), counter))
    rows = []
    try:
        for row in reader:
            counter[0] = 0
            if len(row) > max_columns:
                if any(cell.strip() for cell in row[max_columns:]):
                    raise UploadError(too_many_columns_message(max_columns), code="too_many_columns")
                row = row[:max_columns]
            if len(rows) >= max_rows:
                raise UploadError(too_many_rows_message(max_rows - 1), code="too_many_rows")
            rows.append(row)
    except csv.Error as exc:
        raise UploadError(
            _("The CSV file cannot be read: %(error)s") % {"error": exc}, code="bad_csv"
        ) from exc
    return rows


def csv_header(source, encodings=CSV_ENCODINGS, max_bytes: int = CSV_MAX_HEADER_BYTES) -> list[str]:
    """The column names of a CSV file, reading at most ``max_bytes`` of its first line."""
    source.seek(0)
    line = source.readline(max_bytes + 1)
    source.seek(0)
    if len(line) > max_bytes:
        raise UploadError(
            _("The header line of the file is longer than %(n)s bytes.") % {"n": f"{max_bytes:,}"},
            code="header_too_long",
        )
    for encoding in encodings:
        try:
            text = codecs.decode(line, encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any bytes
        raise UploadError(_("The file is neither UTF-8 nor GB18030 text."), code="encoding")
    try:
        header = next(csv.reader([text]), [])
    except csv.Error as exc:
        raise UploadError(
            _("The CSV file cannot be read: %(error)s") % {"error": exc}, code="bad_csv"
        ) from exc
    return [name.strip() for name in header]


def count_lines(source, chunk: int = 1024 * 1024, stop_after: int | None = None) -> int:
    """Newlines in a binary file, read in chunks (stops counting past ``stop_after``)."""
    source.seek(0)
    count = 0
    last = b""
    while True:
        data = source.read(chunk)
        if not data:
            break
        count += data.count(b"\n")
        last = data[-1:]
        if stop_after is not None and count > stop_after:
            break
    source.seek(0)
    return count + (1 if last and last != b"\n" else 0)
