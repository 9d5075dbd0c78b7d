"""Input frames of the tag engine and the small vectorised helpers shared by
:mod:`~tagportal.engine.evaluate` and :mod:`~tagportal.engine.bitmaps`.

The frames themselves are described in :mod:`tagportal.engine.evaluate`. Everything
here works on whole columns: nothing loops over people.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from tagportal.core.days import BEIJING_ZONE

NS_PER_DAY = 86_400 * 10**9
EPOCH = dt.date(1970, 1, 1)

EVENT_COLUMNS = ("oneid", "time", "type", "channel", "store", "value")
ORDER_COLUMNS = ("oneid", "time", "amount", "quantity", "channel", "store", "category", "sku", "discount")
SOURCE_COLUMNS = {"events": EVENT_COLUMNS, "orders": ORDER_COLUMNS}
TRUE_TEXTS = ("true", "yes", "y", "t", "1")
FALSE_TEXTS = ("false", "no", "n", "f", "0")


# days ------------------------------------------------------------------------
def date_to_day(value: dt.date | str) -> int:
    """Days since 1970-01-01 of a calendar date (``date`` or ``"YYYY-MM-DD"``)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        value = value.date()
    return (value - EPOCH).days


def beijing_day(moment: dt.datetime | dt.date) -> int:
    """The Beijing calendar day (days since 1970-01-01) of a moment.

    A naive ``datetime`` is taken as UTC; a ``date`` is taken as a Beijing date.
    """
    if not isinstance(moment, dt.datetime):
        return date_to_day(moment)
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return date_to_day(stamp.tz_convert(BEIJING_ZONE).date())


def utc_times(column: pd.Series) -> pd.Series:
    """A column of moments as tz-aware UTC datetimes; naive values are taken as
    UTC, texts are read as ISO 8601, unparsable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype) or (
        isinstance(column.dtype, pd.ArrowDtype) and column.dtype.kind == "M"
    ):
        return pd.to_datetime(column, utc=True)
    return pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")


def beijing_days(times: pd.Series) -> np.ndarray:
    """Beijing calendar day (days since 1970-01-01, int64) of tz-aware UTC times;
    NaT gives an undefined number (callers mask NaT out)."""
    local = times.dt.tz_convert(BEIJING_ZONE).dt.tz_localize(None)
    ns = local.to_numpy(dtype="datetime64[ns]").view("int64")
    return np.floor_divide(ns, NS_PER_DAY)


# frames ----------------------------------------------------------------------
def empty_frame(source: str) -> pd.DataFrame:
    """An empty events or orders frame with the standard columns."""
    columns = {name: pd.Series(dtype="float64") for name in SOURCE_COLUMNS[source]}
    columns["oneid"] = pd.Series(dtype="int64")
    columns["time"] = pd.Series(dtype="datetime64[us, UTC]")
    for name in ("type", "channel", "store", "category", "sku"):
        if name in columns:
            columns[name] = pd.Series(dtype=pd.StringDtype("pyarrow"))
    return pd.DataFrame(columns)


def activity_frame(frame: pd.DataFrame | None, source: str) -> pd.DataFrame:
    """``frame`` with a ``oneid`` column (taken from the index if needed), or an empty frame."""
    if frame is None or (len(frame) == 0 and "oneid" not in frame.columns and frame.index.name != "oneid"):
        return empty_frame(source)
    if "oneid" not in frame.columns:
        if frame.index.name != "oneid":
            raise ValueError(f"{source}: expected a 'oneid' column")
        frame = frame.reset_index()
    return frame


def oneids(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, valid)``: OneIDs as int64 (0 where missing) and which are present."""
    numbers = pd.to_numeric(column, errors="coerce")
    valid = numbers.notna().to_numpy(dtype=bool)
    ids = numbers.fillna(0).to_numpy(dtype="int64")
    return ids, valid


def profile_frame(profiles: pd.DataFrame | None) -> pd.DataFrame:
    """Profiles indexed by a unique int64 ``oneid`` (the last row of a OneID wins)."""
    if profiles is None or (len(profiles) == 0 and "oneid" not in profiles.columns):
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="oneid"))
    if "oneid" in profiles.columns:
        profiles = profiles.set_index("oneid")
    ids, valid = oneids(profiles.index.to_series())
    profiles = profiles[valid]
    profiles.index = pd.Index(ids[valid], name="oneid")
    if not profiles.index.is_unique:
        profiles = profiles[~profiles.index.duplicated(keep="last")]
    return profiles


def default_population(*id_columns: Iterable) -> pd.Index:
    """The sorted union of OneIDs."""
    parts = [_unique(np.asarray(ids, dtype="int64")) for ids in id_columns]
    if not parts:
        ids = np.array([], dtype="int64")
    elif len(parts) == 1:
        ids = parts[0]
    else:
        ids = _unique(np.sort(np.concatenate(parts)))  # one row per person per frame left
    return pd.Index(ids, name="oneid")


def _unique(ids: np.ndarray) -> np.ndarray:
    """Sorted distinct values; linear when ``ids`` is already sorted (frames read by
    OneID are), a hash pass then a sort of the distinct values otherwise."""
    if len(ids) < 2:
        return ids.copy()
    if (ids[1:] >= ids[:-1]).all():
        return ids[np.r_[True, ids[1:] != ids[:-1]]]
    return np.sort(pd.unique(ids))


# values ----------------------------------------------------------------------
def is_number_dtype(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def numbers(values) -> np.ndarray:
    """Values as float64 (NaN where missing or not a number)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype("float64", copy=False)
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_bool_dtype(values.dtype) or is_number_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def texts(values) -> pd.Series:
    """Values as nullable strings: whole numbers without ``.0``, booleans as
    ``true``/``false``."""
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    string = pd.StringDtype("pyarrow")
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.map({True: "true", False: "false"}).astype(string)
    if is_number_dtype(values.dtype):
        x = numbers(values)
        out = pd.Series(x, index=values.index).astype(string)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(x) & (x == np.floor(x)) & (np.abs(x) < 2**62)
        if whole.any():
            out[whole] = x[whole].astype("int64").astype(str)
        return out.where(~np.isnan(x), pd.NA)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return _category_texts(values, string)
    out = values.astype(string)
    if values.dtype == object:  # Python booleans among other values
        out = out.replace({"True": "true", "False": "false"})
    return out


def _category_texts(values: pd.Series, string: pd.StringDtype) -> pd.Series:
    """:func:`texts` of a categorical: the categories converted by the same rules, then
    looked up by code in Arrow (a categorical's own ``astype`` goes through Python
    objects, one per row)."""
    categories = texts(pd.Series(values.cat.categories))
    dictionary = pa.array(categories.tolist(), type=pa.large_string(), from_pandas=True)
    codes = values.cat.codes.to_numpy()
    decoded = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), dictionary).dictionary_decode()
    return pd.Series(pd.arrays.ArrowStringArray(decoded), index=values.index, name=values.name).astype(string)


def present(values) -> np.ndarray:
    """Which values are set: not missing and not the empty text."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return ~np.isnan(values)
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    mask = values.notna().to_numpy(dtype=bool)
    if not is_number_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        mask = mask & ~values.isin([""]).to_numpy(dtype=bool)
    return mask


def booleans(values) -> tuple[np.ndarray, np.ndarray]:
    """``(is_true, is_false)`` masks; texts such as yes/no/true/false/1/0 count."""
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_bool_dtype(values.dtype):
        filled = values.astype("boolean")
        return (
            filled.fillna(False).to_numpy(dtype=bool),
            (~filled).fillna(False).to_numpy(dtype=bool),
        )
    if is_number_dtype(values.dtype):
        x = numbers(values)
        return x == 1, x == 0
    lowered = texts(values).str.strip().str.lower()
    return (
        lowered.isin(TRUE_TEXTS).to_numpy(dtype=bool),
        lowered.isin(FALSE_TEXTS).to_numpy(dtype=bool),
    )


def bucket_index(x: np.ndarray, bounds: Sequence[tuple[float | None, float | None]]) -> np.ndarray:
    """For each number, the index of the first ``(min, max)`` bucket holding it
    (``min <= x < max``, either end open when ``None``), or -1."""
    x = numbers(x)
    out = np.full(len(x), -1, dtype="int64")
    with np.errstate(invalid="ignore"):
        for i in range(len(bounds) - 1, -1, -1):
            low, high = bounds[i]
            hit = ~np.isnan(x)
            if low is not None:
                hit &= x >= low
            if high is not None:
                hit &= x < high
            out[hit] = i
    return out


def value_buckets(values: Sequence[dict] | None) -> list[tuple[str, float | None, float | None]]:
    """``(code, min, max)`` of a number tag's ``values`` that define a range."""
    return [
        (str(v["code"]), v.get("min"), v.get("max"))
        for v in values or ()
        if isinstance(v, dict) and "code" in v and (v.get("min") is not None or v.get("max") is not None)
    ]
