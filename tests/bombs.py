"""Hostile files, made small in the test, and a bound on the time and memory it takes to
refuse them.

:func:`bounded` measures the peak memory of the whole process (``VmHWM``, reset through
``/proc/self/clear_refs`` so each bomb is measured alone; it sees pyarrow's and
openpyxl's allocations too) and, where that file cannot be written, the Python
allocations traced by :mod:`tracemalloc`.
"""

from __future__ import annotations

import io
import re
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook

MB = 1024 * 1024
SHEET = "xl/worksheets/sheet1.xml"
NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@dataclass
class Measure:
    seconds: float = 0.0
    peak_mb: float = 0.0
    how: str = ""


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status("VmHWM") <= _status("VmRSS") + 8 * MB
    except OSError:
        return False


@contextmanager
def bounded(seconds: float = 5, megabytes: float = 300):
    """Assert that the block runs within ``seconds`` and raises the process's peak
    memory by less than ``megabytes``."""
    measure = Measure()
    process_wide = _reset_peak()
    if process_wide:
        before = _status("VmRSS")
        measure.how = "VmHWM"
    else:
        tracemalloc.start()
        measure.how = "tracemalloc"
    started = time.perf_counter()
    try:
        yield measure
    finally:
        measure.seconds = time.perf_counter() - started
        if process_wide:
            measure.peak_mb = (_status("VmHWM") - before) / MB
        else:
            measure.peak_mb = tracemalloc.get_traced_memory()[1] / MB
            tracemalloc.stop()
    print(f"refused in {measure.seconds:.2f} s, peak +{measure.peak_mb:.0f} MB ({measure.how})")
    assert measure.seconds < seconds, measure
    assert measure.peak_mb < megabytes, measure


# ---------------------------------------------------------------------------
# Excel


def workbook_bytes(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def replace_entry(data: bytes, name: str, content=None, *, edit=None, writer=None) -> bytes:
    """The zip ``data`` with entry ``name`` replaced: by ``content`` (bytes or an iterable
    of byte chunks), by ``edit(old bytes)``, or written by ``writer(handle)``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info, source.read(info.filename))
                continue
            with target.open(name, "w", force_zip64=True) as handle:
                if writer is not None:
                    writer(handle)
                elif edit is not None:
                    handle.write(edit(source.read(name)))
                elif isinstance(content, bytes):
                    handle.write(content)
                else:
                    for chunk in content:
                        handle.write(chunk)
    return out.getvalue()


def lying_dimension(rows) -> bytes:
    """A tiny workbook whose sheet declares the whole grid, A1:XFD1048576."""
    return replace_entry(
        workbook_bytes(rows),
        SHEET,
        edit=lambda xml: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', xml),
    )


def _column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def sheet_xml(rows) -> Iterator[bytes]:
    """A worksheet's XML in chunks; ``rows`` yields lists of cell XML strings."""
    yield f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{NS}"><sheetData>'.encode()
    for number, cells in enumerate(rows, start=1):
        yield f'<row r="{number}">{"".join(cells)}</row>'.encode()
    yield b"</sheetData></worksheet>"


def text_cell(reference: str | None, text: str) -> str:
    where = f' r="{reference}"' if reference else ""
    return f'<c{where} t="inlineStr"><is><t>{text}</t></is></c>'


def wide_sheet(columns: int) -> bytes:
    """One header row holding a value in each of ``columns`` columns (up to XFD)."""
    cells = [text_cell(f"{_column_letters(c)}1", "action" if c == 1 else "x") for c in range(1, columns + 1)]
    return replace_entry(workbook_bytes([["action"]]), SHEET, sheet_xml([cells]))


def cells_without_references(count: int) -> bytes:
    """One row of ``count`` cells that name no column (each follows the one before)."""
    return replace_entry(workbook_bytes([["action"]]), SHEET, sheet_xml([["<c/>"] * count]))


def tall_sheet(rows: int) -> bytes:
    """A header and ``rows`` rows of one value each."""

    def lines():
        yield [text_cell("A1", "action"), text_cell("B1", "code")]
        for number in range(2, rows + 2):
            yield [text_cell(f"A{number}", "deprecate"), text_cell(f"B{number}", f"t{number}")]

    return replace_entry(workbook_bytes([["action"]]), SHEET, sheet_xml(lines()))


class _ZerosDeflater:
    """Stands in for zipfile's compressor: each megabyte of zeros becomes the same
    self-contained deflate block, so a gigabyte is packed in a fraction of a second."""

    def __init__(self):
        self._compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        self._block = self._compressor.compress(bytes(MB)) + self._compressor.flush(zlib.Z_FULL_FLUSH)

    def compress(self, data: bytes) -> bytes:
        assert len(data) == MB and not any(data[:64])
        return self._block

    def flush(self) -> bytes:
        return self._compressor.flush()


def zip_bomb(gigabytes: int = 1) -> bytes:
    """An .xlsx whose worksheet inflates to ``gigabytes`` GB of zeros (a real deflate stream)."""

    def write(handle):
        handle._compressor = _ZerosDeflater()
        zeros = bytes(MB)
        for _ in range(1024 * gigabytes):
            handle.write(zeros)

    return replace_entry(workbook_bytes([["action"]]), SHEET, writer=write)


def entity_bomb() -> bytes:
    """A worksheet whose DTD expands one entity a billion times ("billion laughs")."""
    levels = ['<!ENTITY l0 "lol">'] + [
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE worksheet [{"".join(levels)}]>'
        f'<worksheet xmlns="{NS}"><sheetData><row r="1">{text_cell("A1", "&l9;")}</row></sheetData></worksheet>'
    )
    return replace_entry(workbook_bytes([["action"]]), SHEET, xml.encode())


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


# ---------------------------------------------------------------------------
# Parquet and CSV


def parquet_of_rows(path: Path, rows: int, column: str = "phone", value: str = "13800000000") -> Path:
    """A Parquet file of ``rows`` rows of one repeated value (dictionary + RLE: a few KB)."""
    indices = pa.array(np.zeros(rows, dtype=np.int8))
    array = pa.DictionaryArray.from_arrays(indices, pa.array([value]))
    pq.write_table(pa.table({column: array}), path, compression="zstd", use_dictionary=True)
    return path


def big_csv(path: Path, megabytes: int, header: str, line: str) -> Path:
    """A CSV of about ``megabytes`` MB: ``header`` then ``line`` repeated."""
    block = (line * max(1, MB // len(line))).encode()
    with open(path, "wb") as handle:
        handle.write(header.encode())
        for _ in range(megabytes):
            handle.write(block)
    return path
