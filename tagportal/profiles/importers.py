"""Reading and checking import files (CSV and Parquet): plain pandas, no ORM.

:func:`read_table` turns a file into a DataFrame; :func:`prepare` checks every row
of it for one kind of import and answers the normalised data, the identity links
of each row and the bad rows (row number, column, message). Nothing is written
here: :func:`tagportal.profiles.imports.import_frame` writes a prepared import
atomically, or nothing when a row is bad.

File formats
============

Row numbers are those a spreadsheet shows: the header is row 1, the first data
row is row 2 (for Parquet too). Identities are given in columns named after
their type, several per row when they co-occur (a row naming a phone and a
unionid says they are one person)::

    phone, wechat_unionid, wechat_openid (+ wechat_app), wecom_external_id,
    douyin_openid, xiaohongshu_id, jd_pin, tmall_id, crm_member_id, device_id

Every row needs at least one identity. Besides them:

- ``customers``: the profile attributes (``gender``, ``age``, ``city``, …).
- ``identities``: nothing else (the row links its identities).
- ``events``: ``client_id``, ``time``, ``type`` (required); ``channel``, ``store``,
  ``value``, ``properties`` (a JSON object) and ``properties.<key>`` columns.
- ``orders``: ``client_id``, ``time``, ``amount`` (required); ``quantity`` (default 1),
  ``channel``, ``store``, ``category``, ``sku``, ``discount`` (default 0), ``items``
  (a JSON array), ``properties`` and ``properties.<key>`` columns.

Times are ISO 8601 (``2024-05-01 10:30:00``, ``2024-05-01T02:30:00Z``); a time
without an offset is Beijing time. CSV files are UTF-8 (with or without BOM) or
GB18030 (what Excel saves in China).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.core import uploads
from tagportal.core.days import BEIJING_ZONE
from tagportal.profiles.schema import CHANNELS, NUMBER, PROFILE_ATTRIBUTES, event_types

from . import pii
from .choices import PER_APP_TYPES, IdentityType, ImportKind

IDENTITY_COLUMNS = tuple(IdentityType.values)
APP_COLUMN = "wechat_app"
PROPERTIES = "properties"
PROPERTY_PREFIX = "properties."
#: At most this many bad rows are listed in a report (all are counted).
MAX_ERRORS = 1000
MAX_TEXT = 100

FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required columns, optional columns) besides identities
    ImportKind.CUSTOMERS: ((), tuple(PROFILE_ATTRIBUTES)),
    ImportKind.IDENTITIES: ((), ()),
    ImportKind.EVENTS: (("client_id", "time", "type"), ("channel", "store", "value", PROPERTIES)),
    ImportKind.ORDERS: (
        ("client_id", "time", "amount"),
        ("quantity", "channel", "store", "category", "sku", "discount", "items", PROPERTIES),
    ),
}
GENDERS = {
    "female": "female",
    "male": "male",
    "unknown": "unknown",
    "女": "female",
    "男": "male",
    "未知": "unknown",
}
YES_NO = {
    "yes": "yes",
    "no": "no",
    "true": "yes",
    "false": "no",
    "1": "yes",
    "0": "no",
    "是": "yes",
    "否": "no",
}


class ImportFileError(Exception):
    """The file cannot be read at all (not CSV or Parquet, broken quoting, bad encoding)."""

    def __init__(self, message: str, row: int | None = None):
        super().__init__(message)
        self.row = row


# ---------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class Caps:
    """The most rows (below the header) and columns a file may have; ``None``: no cap."""

    rows: int | None = None
    columns: int | None = None


NO_CAPS = Caps()


def upload_caps() -> Caps:
    """The caps of an uploaded import (``TAGPORTAL_IMPORT_MAX_ROWS`` / ``_COLUMNS``)."""
    return Caps(
        rows=int(getattr(settings, "TAGPORTAL_IMPORT_MAX_ROWS", 500_000)),
        columns=int(getattr(settings, "TAGPORTAL_IMPORT_MAX_COLUMNS", 200)),
    )


def file_format(name: str | None, head: bytes = b"") -> str:
    if head.startswith(b"PAR1") or (name or "").lower().endswith((".parquet", ".pq")):
        return "parquet"
    if uploads.is_zip(head) or (name or "").lower().endswith((".xlsx", ".xlsm", ".xls", ".zip")):
        return "excel"
    return "csv"


def _file_error(exc: Exception) -> ImportFileError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    line = re.search(r"line (\d+)", message)
    return ImportFileError(
        _("The file could not be read: %(error)s") % {"error": message},
        row=int(line.group(1)) if line else None,
    )


def _too_many_rows(caps: Caps) -> ImportFileError:
    return ImportFileError(uploads.too_many_rows_message(caps.rows))


def _too_many_columns(caps: Caps) -> ImportFileError:
    return ImportFileError(uploads.too_many_columns_message(caps.columns), row=1)


def _excel_refused() -> ImportFileError:
    return ImportFileError(_("Excel files are not imported here: save the sheet as CSV (UTF-8) or Parquet."))


@dataclass(frozen=True)
class Inspection:
    """What an upload shows without being read: its format, columns and rows (for a CSV,
    the lines below the header, an upper bound when cells hold line breaks)."""

    format: str
    columns: list[str]
    rows: int


def inspect(source, name: str | None = None, caps: Caps = NO_CAPS) -> Inspection:
    """Check a file cheaply, before it is stored and imported: its format, its header,
    and its size against ``caps`` (a Parquet file by its metadata, a CSV by its line
    count). Raises :class:`ImportFileError`."""
    head = uploads.head(source, 8)
    kind = file_format(name, head)
    if kind == "excel":
        raise _excel_refused()
    if kind == "parquet":
        parquet = _parquet_file(source)
        metadata = parquet.metadata
        columns = list(parquet.schema_arrow.names)
        if caps.columns is not None and metadata.num_columns > caps.columns:
            raise _too_many_columns(caps)
        if caps.rows is not None and metadata.num_rows > caps.rows:
            raise _too_many_rows(caps)
        return Inspection("parquet", columns, int(metadata.num_rows))
    columns = _csv_header(source, caps)
    stop = None if caps.rows is None else caps.rows + 1
    lines = max(0, uploads.count_lines(source, stop_after=stop) - 1)
    if caps.rows is not None and lines > caps.rows:
        raise _too_many_rows(caps)
    return Inspection("csv", columns, lines)


def _csv_header(source, caps: Caps) -> list[str]:
    """A CSV file's column names, read with a bound; too many of them are refused."""
    try:
        columns = uploads.csv_header(source)
    except uploads.UploadError as exc:
        raise ImportFileError(exc.message, row=1) from exc
    if caps.columns is not None and len(columns) > caps.columns:
        raise _too_many_columns(caps)
    return columns


def _parquet_file(source):
    import pyarrow.parquet as pq

    source.seek(0)
    try:
        return pq.ParquetFile(source)
    except Exception as exc:  # not Parquet, truncated, corrupt footer
        raise _file_error(exc) from exc


def read_table(source, name: str | None = None, caps: Caps = NO_CAPS) -> pd.DataFrame:
    """A CSV or Parquet file (a path or a binary file object) as a DataFrame; CSV cells
    are read as text (an empty cell is the empty text). Past ``caps`` it stops reading
    and raises :class:`ImportFileError`: a Parquet file by its metadata before any row is
    read, a CSV as soon as the row after the last allowed one is parsed."""
    if isinstance(source, str | Path):
        name = name or str(source)
        with open(source, "rb") as handle:
            return read_table(handle, name, caps)
    head = uploads.head(source, 8)
    try:
        kind = file_format(name, head)
        if kind == "excel":
            raise _excel_refused()
        if kind == "parquet":
            return _read_parquet(source, caps)
        return _read_csv(source, caps)
    except ImportFileError:
        raise
    except Exception as exc:  # pandas / pyarrow parser errors
        raise _file_error(exc) from exc


def _read_parquet(source, caps: Caps) -> pd.DataFrame:
    import pyarrow as pa

    parquet = _parquet_file(source)
    metadata = parquet.metadata
    if caps.columns is not None and metadata.num_columns > caps.columns:
        raise _too_many_columns(caps)
    if caps.rows is not None and metadata.num_rows > caps.rows:
        raise _too_many_rows(caps)
    batches = list(parquet.iter_batches(batch_size=65_536))
    table = (
        pa.Table.from_batches(batches, schema=parquet.schema_arrow)
        if batches
        else parquet.schema_arrow.empty_table()
    )
    return table.to_pandas()


def _read_csv(source, caps: Caps) -> pd.DataFrame:
    if caps.columns is not None or caps.rows is not None:
        _csv_header(source, caps)
    last = None
    for encoding in ("utf-8-sig", "gb18030"):
        source.seek(0)
        try:
            frame = pd.read_csv(
                source,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding=encoding,
                skip_blank_lines=True,
                nrows=None if caps.rows is None else caps.rows + 1,
            )
        except UnicodeDecodeError as exc:
            last = exc
            continue
        if caps.rows is not None and len(frame) > caps.rows:
            raise _too_many_rows(caps)
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame
    raise ImportFileError(_("The file is neither UTF-8 nor GB18030 text.")) from last


# ---------------------------------------------------------------------------
# Checking


@dataclass
class Prepared:
    """A checked import: ``data`` (one row per file row, indexed by position), the
    identity ``links`` (``pos``, ``type``, ``app``, ``value``) and the bad rows."""

    kind: str
    rows: int
    data: pd.DataFrame
    links: pd.DataFrame
    errors: list[dict] = field(default_factory=list)
    rows_bad: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


class _Errors:
    def __init__(self):
        self.parts: list[pd.DataFrame] = []
        self.header: list[dict] = []

    def add(self, positions, column: str, message: str):
        positions = np.asarray(positions, dtype="int64")
        if len(positions):
            self.parts.append(pd.DataFrame({"pos": positions, "column": column, "message": message}))

    def add_each(self, positions, column: str, messages: Iterable[str]):
        positions = np.asarray(positions, dtype="int64")
        if len(positions):
            self.parts.append(pd.DataFrame({"pos": positions, "column": column, "message": list(messages)}))

    def mask(self, mask, column: str, message: str):
        self.add(np.flatnonzero(np.asarray(mask, dtype=bool)), column, message)

    def result(self) -> tuple[list[dict], int]:
        if self.header:
            return self.header, 0
        if not self.parts:
            return [], 0
        table = pd.concat(self.parts, ignore_index=True)
        table["row"] = table["pos"] + 2
        table = table.sort_values(["row", "column"], kind="stable")
        bad = table["row"].nunique()
        table = table.head(MAX_ERRORS)
        return [
            {"row": int(r), "column": c, "message": m}
            for r, c, m in zip(table["row"], table["column"], table["message"], strict=True)
        ], int(bad)


def _texts(column: pd.Series) -> pd.Series:
    """Cells as stripped text, missing as ''."""
    return column.astype("string").fillna("").str.strip().astype(object)


def header_errors(kind: str, columns: list[str]) -> list[dict]:
    """The problems of a header (row 1) for an import of ``kind``: unknown, repeated and
    missing columns, no identity column."""
    if kind not in FIELDS:
        raise ValueError(f"unknown import kind {kind!r}")
    columns = [str(c).strip() for c in columns]
    errors: list[dict] = []
    required, optional = FIELDS[kind]
    allowed = set(required) | set(optional) | set(IDENTITY_COLUMNS) | {APP_COLUMN}
    takes_properties = PROPERTIES in optional
    for column in columns:
        if column in allowed or (
            takes_properties and column.startswith(PROPERTY_PREFIX) and len(column) > 11
        ):
            continue
        hint = _(" Free properties go in “properties.<key>” columns.") if takes_properties else ""
        errors.append({"row": 1, "column": column, "message": _("Unknown column.") + hint})
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    for column in duplicated:
        errors.append({"row": 1, "column": column, "message": _("The column appears twice.")})
    for column in required:
        if column not in columns:
            errors.append({"row": 1, "column": column, "message": _("Missing required column.")})
    if not any(c in columns for c in IDENTITY_COLUMNS):
        errors.append(
            {
                "row": 1,
                "column": "",
                "message": _("No identity column: give at least one of %(columns)s.")
                % {"columns": ", ".join(IDENTITY_COLUMNS)},
            }
        )
    return errors


def prepare(kind: str, frame: pd.DataFrame, *, now: dt.datetime | None = None) -> Prepared:
    """Check ``frame`` as an import of ``kind``; see the module docstring for the columns."""
    if kind not in FIELDS:
        raise ValueError(f"unknown import kind {kind!r}")
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    n = len(frame)
    errors = _Errors()
    errors.header = header_errors(kind, list(frame.columns))
    if errors.header:
        listed, _bad = errors.result()
        return Prepared(kind, n, pd.DataFrame(index=range(n)), _empty_links(), listed, n)

    links = _identity_links(frame, errors)
    data = pd.DataFrame(index=pd.RangeIndex(n))
    if kind == ImportKind.CUSTOMERS:
        data["attributes"] = _attributes(frame, errors)
    elif kind in (ImportKind.EVENTS, ImportKind.ORDERS):
        now = now or timezone.now()
        data["client_id"] = _client_ids(frame["client_id"], errors)
        data["time"] = _times(frame["time"], "time", errors, now)
        if kind == ImportKind.EVENTS:
            _event_fields(frame, data, errors)
        else:
            _order_fields(frame, data, errors)
        data["properties"] = _properties(frame, errors)
    listed, bad = errors.result()
    return Prepared(kind, n, data, links, listed, bad)


def _empty_links() -> pd.DataFrame:
    return pd.DataFrame(
        {"pos": pd.Series(dtype="int64"), "type": pd.Series(dtype=object), "app": pd.Series(dtype=object),
         "value": pd.Series(dtype=object)}
    )  # fmt: skip


def _identity_links(frame: pd.DataFrame, errors: _Errors) -> pd.DataFrame:
    n = len(frame)
    parts = []
    any_identity = np.zeros(n, dtype=bool)
    app = _texts(frame[APP_COLUMN]) if APP_COLUMN in frame.columns else pd.Series("", index=frame.index)
    for type_ in IDENTITY_COLUMNS:
        if type_ not in frame.columns:
            continue
        values, problems = pii.normalise(type_, frame[type_])
        bad = problems.notna().to_numpy(dtype=bool)
        errors.add_each(np.flatnonzero(bad), type_, problems[bad])
        given = (values != "").to_numpy(dtype=bool) & ~bad
        any_identity |= given | bad
        apps = pd.Series("", index=frame.index)
        if type_ in PER_APP_TYPES:
            no_app = given & (app == "").to_numpy(dtype=bool)
            errors.mask(no_app, APP_COLUMN, _("A WeChat openid needs its app (the appid) in “wechat_app”."))
            long_app = given & (app.str.len() > 64).to_numpy(dtype=bool)
            errors.mask(long_app, APP_COLUMN, _("Longer than 64 characters."))
            given &= ~no_app & ~long_app
            apps = app
        positions = np.flatnonzero(given)
        parts.append(
            pd.DataFrame(
                {
                    "pos": positions,
                    "type": type_,
                    "app": apps.to_numpy(dtype=object)[positions],
                    "value": values.to_numpy(dtype=object)[positions],
                }
            )
        )
    errors.mask(
        ~any_identity,
        "",
        _("No identity: give at least one of %(columns)s.") % {"columns": ", ".join(IDENTITY_COLUMNS)},
    )
    if not parts:
        return _empty_links()
    return pd.concat(parts, ignore_index=True).sort_values(["pos"], kind="stable", ignore_index=True)


def _client_ids(column: pd.Series, errors: _Errors) -> pd.Series:
    text = _texts(column)
    errors.mask(text == "", "client_id", _("Required."))
    errors.mask(text.str.len() > 100, "client_id", _("Longer than 100 characters."))
    repeated = text.duplicated(keep="first") & (text != "")
    if repeated.any():
        first = pd.Series(np.arange(len(text)), index=text.index).groupby(text).transform("min")
        positions = np.flatnonzero(repeated.to_numpy(dtype=bool))
        errors.add_each(
            positions,
            "client_id",
            [_("Repeats the client id of row %(row)d.") % {"row": int(first.iloc[p]) + 2} for p in positions],
        )
    return text


def _times(column: pd.Series, name: str, errors: _Errors, now: dt.datetime) -> pd.Series:
    """Moments as tz-aware UTC; texts without an offset (and naive datetimes) are Beijing time."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        times = column
        if times.dt.tz is None:
            times = times.dt.tz_localize(BEIJING_ZONE, ambiguous="NaT", nonexistent="NaT")
        times = times.dt.tz_convert("UTC")
        missing = times.isna().to_numpy(dtype=bool)
        errors.mask(missing, name, _("Required."))
    else:
        text = _texts(column)
        empty = (text == "").to_numpy(dtype=bool)
        errors.mask(empty, name, _("Required."))
        times = pd.Series(pd.NaT, index=column.index, dtype="datetime64[us, UTC]")
        aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).to_numpy(dtype=bool) & ~empty
        naive = ~aware & ~empty
        if aware.any():
            times[aware] = pd.to_datetime(text[aware], utc=True, errors="coerce", format="ISO8601")
        if naive.any():
            local = pd.to_datetime(text[naive], errors="coerce", format="ISO8601")
            retry = local.isna()
            if retry.any():  # 2024/5/1 10:00 and friends
                local[retry] = pd.to_datetime(text[naive][retry], errors="coerce", format="mixed")
            times[naive] = local.dt.tz_localize(
                BEIJING_ZONE, ambiguous="NaT", nonexistent="NaT"
            ).dt.tz_convert("UTC")
        unreadable = times.isna().to_numpy(dtype=bool) & ~empty
        errors.mask(
            unreadable,
            name,
            _(
                "Not a date and time (ISO 8601, e.g. 2024-05-01 10:30:00; without an offset it is Beijing time)."
            ),
        )
    ok = times.notna().to_numpy(dtype=bool)
    limit = pd.Timestamp(now) + pd.Timedelta(days=1)
    future = np.zeros(len(times), dtype=bool)
    future[ok] = (times[ok] > limit).to_numpy(dtype=bool)
    errors.mask(future, name, _("In the future."))
    early = np.zeros(len(times), dtype=bool)
    early[ok] = (times[ok] < pd.Timestamp("1970-01-02", tz="UTC")).to_numpy(dtype=bool)
    errors.mask(early, name, _("Before 1970."))
    return times


def _numbers(
    frame: pd.DataFrame,
    name: str,
    errors: _Errors,
    *,
    required: bool = False,
    default: float | None = None,
    minimum: float | None = None,
    whole: bool = False,
    maximum: float = 1e12,
) -> pd.Series:
    n = len(frame)
    if name not in frame.columns:
        return pd.Series(default if default is not None else np.nan, index=frame.index, dtype="float64")
    column = frame[name]
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        x = pd.to_numeric(column, errors="coerce").astype("float64")
        empty = x.isna().to_numpy(dtype=bool)
        bad = np.zeros(n, dtype=bool)
    else:
        text = _texts(column).str.replace(",", "", regex=False).str.replace("¥", "", regex=False)
        empty = (text == "").to_numpy(dtype=bool)
        x = pd.to_numeric(text.where(~empty, None), errors="coerce").astype("float64")
        bad = x.isna().to_numpy(dtype=bool) & ~empty
    errors.mask(bad, name, _("Not a number."))
    if required:
        errors.mask(empty, name, _("Required."))
    values = x.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        infinite = ~np.isfinite(values) & ~np.isnan(values)
        errors.mask(infinite | (np.abs(values) > maximum), name, _("Out of range."))
        if minimum is not None:
            errors.mask(values < minimum, name, _("Must be at least %(min)s.") % {"min": f"{minimum:g}"})
        if whole:
            errors.mask(
                np.isfinite(values) & (values != np.floor(values)), name, _("Must be a whole number.")
            )
    if default is not None:
        x = x.fillna(default)
    return x


def _short_texts(frame: pd.DataFrame, name: str, errors: _Errors, limit: int = MAX_TEXT) -> pd.Series:
    if name not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    text = _texts(frame[name])
    errors.mask(text.str.len() > limit, name, _("Longer than %(max)d characters.") % {"max": limit})
    return text


def _choice(
    frame: pd.DataFrame, name: str, allowed: set[str], errors: _Errors, *, required: bool
) -> pd.Series:
    if name not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    text = _texts(frame[name])
    empty = (text == "").to_numpy(dtype=bool)
    if required:
        errors.mask(empty, name, _("Required."))
    unknown = ~text.isin(allowed).to_numpy(dtype=bool) & ~empty
    positions = np.flatnonzero(unknown)
    errors.add_each(
        positions,
        name,
        [
            _("Unknown %(field)s “%(value)s”; expected one of: %(allowed)s.")
            % {"field": name, "value": text.iloc[p], "allowed": ", ".join(sorted(allowed))}
            for p in positions[:MAX_ERRORS]
        ]
        + [_("Unknown value.")] * max(0, len(positions) - MAX_ERRORS),
    )
    return text


def _event_fields(frame: pd.DataFrame, data: pd.DataFrame, errors: _Errors) -> None:
    data["type"] = _choice(frame, "type", event_types(), errors, required=True)
    data["channel"] = _choice(frame, "channel", set(CHANNELS), errors, required=False)
    data["store"] = _short_texts(frame, "store", errors)
    data["value"] = _numbers(frame, "value", errors)


def _order_fields(frame: pd.DataFrame, data: pd.DataFrame, errors: _Errors) -> None:
    data["amount"] = _numbers(frame, "amount", errors, required=True, minimum=0)
    data["quantity"] = _numbers(frame, "quantity", errors, default=1, minimum=0, whole=True, maximum=1e9)
    data["channel"] = _choice(frame, "channel", set(CHANNELS), errors, required=False)
    for name in ("store", "category", "sku"):
        data[name] = _short_texts(frame, name, errors)
    data["discount"] = _numbers(frame, "discount", errors, default=0, minimum=0)
    data["items"] = _json_cells(frame, "items", list, _("Not a JSON array."), errors)


def _json_cells(frame: pd.DataFrame, name: str, kind: type, message: str, errors: _Errors) -> list:
    empty = kind()
    if name not in frame.columns:
        return [kind() for _i in range(len(frame))]
    out = []
    bad = []
    for pos, cell in enumerate(frame[name].tolist()):
        if isinstance(cell, kind):
            out.append(cell)
            continue
        if cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip() == "":
            out.append(kind())
            continue
        try:
            value = json.loads(cell) if isinstance(cell, str | bytes) else cell
        except ValueError:
            value = None
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, kind):
            bad.append(pos)
            value = empty
        out.append(value)
    errors.add(bad, name, message)
    return out


def _plain(value):
    """A cell as a JSON-friendly value, or None for a missing one."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _properties(frame: pd.DataFrame, errors: _Errors) -> list[dict]:
    base = _json_cells(frame, PROPERTIES, dict, _("Not a JSON object."), errors)
    for column in frame.columns:
        if not column.startswith(PROPERTY_PREFIX):
            continue
        key = column[len(PROPERTY_PREFIX) :]
        values = frame[column]
        present = values.notna().to_numpy(dtype=bool)
        if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
            present = present & (_texts(values) != "").to_numpy(dtype=bool)
        cells = values.tolist()
        for pos in np.flatnonzero(present):
            value = _plain(cells[pos])
            if value is not None:
                base[pos][key] = value
    return base


def _attributes(frame: pd.DataFrame, errors: _Errors) -> list[dict]:
    n = len(frame)
    out: list[dict] = [{} for _i in range(n)]
    for name, kind in PROFILE_ATTRIBUTES.items():
        if name not in frame.columns:
            continue
        if kind == NUMBER:
            x = _numbers(frame, name, errors, minimum=0 if name != "points" else None)
            values = [None if math.isnan(v) else (int(v) if float(v).is_integer() else v) for v in x.tolist()]
        else:
            text = _short_texts(frame, name, errors)
            if name == "gender" or name == "wecom_added":
                table = GENDERS if name == "gender" else YES_NO
                lowered = text.str.lower()
                mapped = lowered.map(table)
                unknown = mapped.isna().to_numpy(dtype=bool) & (text != "").to_numpy(dtype=bool)
                errors.mask(
                    unknown,
                    name,
                    _("Expected one of: %(allowed)s.") % {"allowed": ", ".join(sorted(set(table)))},
                )
                text = mapped.fillna("")
            values = [v or None for v in text.tolist()]
        for pos, value in enumerate(values):
            if value is not None:
                out[pos][name] = value
    return out
