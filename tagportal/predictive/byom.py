"""Bring your own model: scores a brand computed elsewhere, as a score file or over HTTP,
ready to become a number tag and 高 / 中 / 低 buckets.

Score files
===========

:func:`read_score_file` reads a CSV (UTF-8 or GB18030) or Parquet file of two columns:
``oneid,score`` or ``<identity type>,score`` (``phone``, ``wechat_unionid``, … — the
types of :class:`tagportal.profiles.choices.IdentityType`; an openid file names its app
with ``app``). It reuses the import readers (:func:`tagportal.profiles.importers.read_table`
with the upload caps ``TAGPORTAL_IMPORT_MAX_ROWS`` / ``_COLUMNS``, after
:func:`tagportal.core.uploads.check_size`): a file over a cap, not CSV or Parquet, or
unreadable raises :class:`ScoreFileError` before its rows are read.

- Row numbers are a spreadsheet's: the header is row 1, the first person row 2.
- Identity values are normalised and looked up by their keyed hash
  (:func:`tagportal.profiles.services.identity_oneids`), as the profiles app stores
  them; a OneID is taken as given (:func:`tagportal.profiles.services.live_oneids`). A OneID merged into another person counts for the person it was merged into.
- A row whose identity or OneID is not a person of the brand is **unmatched**: counted
  and listed in the report (``unmatched``, ``unmatched_rows``), not an error — a model
  scored elsewhere often knows people the brand does not.
- **Row errors**: a missing or malformed identity or OneID, a score that is empty, not a
  number, NaN or infinite, or outside ``score_range`` (inclusive), and a person given
  twice (the same value, or two values of one person) — ``{row, column, message}``,
  sorted by row, at most :data:`tagportal.profiles.importers.MAX_ERRORS` listed
  (``report["bad_rows"]`` counts them all). Header problems (a missing, unknown or
  repeated column) are errors of row 1.
- **Atomic**: with any error, :attr:`ScoreFile.scores` is empty — nothing of the file is
  to be stored.
- An identity file answers *who of these values is a customer* (the unmatched rows), so
  the caller gates it as an identity lookup (:mod:`tagportal.profiles.lookups`) for the
  user who uploads it; ``report["identity_values"]`` is the number of values asked.

Report keys: ``format``, ``rows``, ``id_column``, ``app``, ``score_range``,
``identity_values``, ``matched``, ``unmatched``, ``unmatched_rows``, ``merged_followed``,
``bad_rows``, and, when the file is accepted, ``summary`` (``min``, ``mean``, ``max``).

Buckets and HTTP
================

:func:`score_buckets` turns scores into :class:`ScoreLevel` values by two thresholds.
:func:`score_over_http` (from :mod:`.scoring_client`) asks a brand's scoring endpoint;
the contract is in :mod:`.scoring_contract`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from tagportal.core import uploads
from tagportal.profiles import importers, pii
from tagportal.profiles import services as profile_services
from tagportal.profiles.choices import PER_APP_TYPES, IdentityType

from .scoring_client import HttpScoring, ScoringError, score_over_http

__all__ = [
    "HttpScoring",
    "ScoreFile",
    "ScoreFileError",
    "ScoreLevel",
    "ScoringError",
    "read_score_file",
    "score_buckets",
    "score_over_http",
]

ONEID = "oneid"
SCORE = "score"


class ScoreLevel(models.TextChoices):
    """The buckets of a brand's own score."""

    HIGH = "high", pgettext_lazy("score level", "High")
    MEDIUM = "medium", pgettext_lazy("score level", "Medium")
    LOW = "low", pgettext_lazy("score level", "Low")


class ScoreFileError(ValueError):
    """A score file refused whole: too big, of another type, unreadable, or a bad choice of
    identity column. ``row`` is the row at fault when known."""

    def __init__(self, message: str, *, code: str = "invalid", row: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.row = row


@dataclass
class ScoreFile:
    """A read score file: ``scores`` (float64, index ``oneid``; empty when there are
    errors), its ``report`` and its row ``errors``."""

    scores: pd.Series
    report: dict
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _empty_scores() -> pd.Series:
    return pd.Series([], index=pd.Index([], dtype="int64", name=ONEID), dtype="float64", name=SCORE)


class _Rows:
    """Row errors by position (0 = the first person row)."""

    def __init__(self):
        self.items: list[tuple[int, str, str]] = []

    def mask(self, mask, column: str, message: str) -> None:
        for pos in np.flatnonzero(np.asarray(mask, dtype=bool)):
            self.items.append((int(pos), column, message))

    def add(self, pos: int, column: str, message: str) -> None:
        self.items.append((int(pos), column, message))

    def listed(self) -> tuple[list[dict], int]:
        ordered = sorted(self.items, key=lambda item: (item[0], item[1]))
        bad = len({pos for pos, _c, _m in ordered})
        return [
            {"row": pos + 2, "column": column, "message": message}
            for pos, column, message in ordered[: importers.MAX_ERRORS]
        ], bad


def read_score_file(
    brand,
    upload,
    *,
    id_column: str = ONEID,
    app: str = "",
    name: str | None = None,
    score_range: tuple[float, float] | None = None,
) -> ScoreFile:
    """Read a score file of ``brand`` (see the module docstring). Raises
    :class:`ScoreFileError` for a file refused before its rows are checked."""
    if id_column != ONEID and id_column not in IdentityType.values:
        raise ScoreFileError(
            _("Unknown identity column “%(column)s”; expected oneid or one of %(types)s.")
            % {"column": id_column, "types": ", ".join(IdentityType.values)},
            code="id_column",
        )
    app = (app or "").strip()
    if id_column in PER_APP_TYPES and not app:
        raise ScoreFileError(_("A file of WeChat openids needs their app (the appid)."), code="app")
    if id_column not in PER_APP_TYPES:
        app = ""
    if score_range is not None:
        low, high = (float(v) for v in score_range)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ScoreFileError(_("The score range must be two numbers, the lower first."), code="range")
        score_range = (low, high)
    name = name or getattr(upload, "name", None)
    try:
        uploads.check_size(upload)
        kind = importers.file_format(name, uploads.head(upload, 8))
        frame = importers.read_table(upload, name, importers.upload_caps())
    except uploads.UploadError as exc:
        raise ScoreFileError(exc.message, code=exc.code) from exc
    except importers.ImportFileError as exc:
        raise ScoreFileError(str(exc), code="unreadable", row=exc.row) from exc

    frame.columns = [str(c).strip() for c in frame.columns]
    report = {
        "format": kind,
        "rows": len(frame),
        "id_column": id_column,
        "app": app,
        "score_range": list(score_range) if score_range else None,
        "identity_values": 0,
        "matched": 0,
        "unmatched": 0,
        "unmatched_rows": [],
        "merged_followed": 0,
        "bad_rows": 0,
    }
    header = _header_errors(list(frame.columns), id_column)
    if header:
        report["bad_rows"] = len(frame)
        return ScoreFile(_empty_scores(), report, header)
    if not len(frame):
        return ScoreFile(
            _empty_scores(), report, [{"row": 1, "column": "", "message": _("The file has no rows.")}]
        )

    rows = _Rows()
    frame = frame.reset_index(drop=True)
    scores = _scores(frame[SCORE], rows, score_range)
    if id_column == ONEID:
        keys = _oneids(frame[ONEID], rows)
        people = profile_services.live_oneids(brand, [k for k in keys if k is not None])
    else:
        keys = _identities(frame[id_column], id_column, rows)
        asked = sorted({k for k in keys if k is not None})
        report["identity_values"] = len(asked)
        people = profile_services.identity_oneids(brand, id_column, app, asked)
    _repeats(keys, id_column, rows, _("Repeats the value of row %(row)d."))

    oneids: list[int | None] = [None if k is None else people.get(k) for k in keys]
    unmatched = [
        pos + 2 for pos, (k, o) in enumerate(zip(keys, oneids, strict=True)) if k is not None and o is None
    ]
    report["matched"] = sum(o is not None for o in oneids)
    report["unmatched"] = len(unmatched)
    report["unmatched_rows"] = unmatched[: importers.MAX_ERRORS]
    report["merged_followed"] = sum(
        1 for k, o in zip(keys, oneids, strict=True) if o is not None and id_column == ONEID and o != k
    )
    seen_values = {}
    seen_people: dict[int, int] = {}
    for pos, (key, oneid) in enumerate(zip(keys, oneids, strict=True)):
        if oneid is None or key in seen_values:
            seen_values.setdefault(key, pos)
            continue
        seen_values[key] = pos
        if oneid in seen_people:
            rows.add(
                pos,
                id_column,
                _("The same person (OneID %(oneid)d) as row %(row)d.")
                % {"oneid": oneid, "row": seen_people[oneid] + 2},
            )
        else:
            seen_people[oneid] = pos

    errors, bad = rows.listed()
    report["bad_rows"] = bad
    if errors:
        return ScoreFile(_empty_scores(), report, errors)
    matched = [pos for pos, o in enumerate(oneids) if o is not None]
    out = pd.Series(
        scores.to_numpy(dtype="float64")[matched],
        index=pd.Index([oneids[p] for p in matched], dtype="int64", name=ONEID),
        name=SCORE,
    ).sort_index()
    if len(out):
        report["summary"] = {
            "min": float(out.min()),
            "mean": round(float(out.mean()), 6),
            "max": float(out.max()),
        }
    return ScoreFile(out, report, [])


def _header_errors(columns: list[str], id_column: str) -> list[dict]:
    errors = []
    allowed = {id_column, SCORE}
    for column in columns:
        if column not in allowed:
            errors.append(
                {
                    "row": 1,
                    "column": column,
                    "message": _("Unknown column: a score file has the columns %(id)s and score.")
                    % {"id": id_column},
                }
            )
    for column in sorted({c for c in columns if columns.count(c) > 1}):
        errors.append({"row": 1, "column": column, "message": _("The column appears twice.")})
    for column in (id_column, SCORE):
        if column not in columns:
            errors.append({"row": 1, "column": column, "message": _("Missing required column.")})
    return errors


_NON_FINITE = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _scores(column: pd.Series, rows: _Rows, score_range) -> pd.Series:
    if pd.api.types.is_bool_dtype(column.dtype):
        rows.mask(np.ones(len(column), dtype=bool), SCORE, _("Not a number."))
        return pd.Series(np.nan, index=column.index)
    if pd.api.types.is_numeric_dtype(column.dtype):
        x = pd.to_numeric(column, errors="coerce").astype("float64")
        values = x.to_numpy()
        rows.mask(~np.isfinite(values), SCORE, _("Not a finite number (empty, NaN or infinite)."))
    else:
        text = column.astype("string").fillna("").str.strip()
        empty = (text == "").to_numpy(dtype=bool)
        non_finite = text.str.lower().isin(_NON_FINITE).to_numpy(dtype=bool)
        x = pd.to_numeric(text.where(~(empty | non_finite), None), errors="coerce").astype("float64")
        values = x.to_numpy()
        rows.mask(empty, SCORE, _("Required."))
        rows.mask(non_finite, SCORE, _("Not a finite number (NaN or infinite)."))
        with np.errstate(invalid="ignore"):
            rows.mask(np.isnan(values) & ~empty & ~non_finite, SCORE, _("Not a number."))
            rows.mask(np.isinf(values) & ~non_finite, SCORE, _("Not a finite number (NaN or infinite)."))
    if score_range is not None:
        low, high = score_range
        with np.errstate(invalid="ignore"):
            outside = np.isfinite(values) & ((values < low) | (values > high))
        rows.mask(
            outside,
            SCORE,
            _("Outside the declared range %(low)s to %(high)s.") % {"low": f"{low:g}", "high": f"{high:g}"},
        )
    return x


def _oneids(column: pd.Series, rows: _Rows) -> list[int | None]:
    message = _("Not a OneID (a positive whole number).")
    if pd.api.types.is_integer_dtype(column.dtype):
        values = column.to_numpy(dtype="int64")
        bad = values < 1
        rows.mask(bad, ONEID, message)
        return [None if b else int(v) for v, b in zip(values, bad, strict=True)]
    text = column.astype("string").fillna("").str.strip()
    if pd.api.types.is_float_dtype(column.dtype):  # a Parquet column of floats: whole ones only
        floats = column.to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(floats) & (floats == np.floor(floats)) & (floats >= 1) & (floats < 2**62)
        text = pd.Series(
            [str(int(f)) if w else ("" if math.isnan(f) else "x") for f, w in zip(floats, whole, strict=True)]
        )
    empty = (text == "").to_numpy(dtype=bool)
    good = text.str.fullmatch(r"[0-9]{1,18}").fillna(False).to_numpy(dtype=bool) & ~empty
    out: list[int | None] = [int(t) if g else None for t, g in zip(text.tolist(), good, strict=True)]
    zero = np.array([o == 0 for o in out], dtype=bool)
    rows.mask(empty, ONEID, _("Required."))
    rows.mask((~good & ~empty) | zero, ONEID, message)
    return [None if z else o for o, z in zip(out, zero, strict=True)]


def _identities(column: pd.Series, type_: str, rows: _Rows) -> list[str | None]:
    values, problems = pii.normalise(type_, column.reset_index(drop=True))
    bad = problems.notna().to_numpy(dtype=bool)
    for pos in np.flatnonzero(bad):
        rows.add(int(pos), type_, str(problems.iloc[pos]))
    empty = (values == "").to_numpy(dtype=bool) & ~bad
    rows.mask(empty, type_, _("Required."))
    return [None if b or e else v for v, b, e in zip(values.tolist(), bad, empty, strict=True)]


def _repeats(keys: list, column: str, rows: _Rows, message: str) -> None:
    first: dict = {}
    for pos, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            rows.add(pos, column, message % {"row": first[key] + 2})
        else:
            first[key] = pos


def score_buckets(scores: pd.Series, high_from: float, medium_from: float) -> pd.Series:
    """The :class:`ScoreLevel` of each score: ``high`` from ``high_from`` up, ``medium``
    from ``medium_from`` up, ``low`` below; a missing score has no level (``None``)."""
    high_from, medium_from = float(high_from), float(medium_from)
    if not (math.isfinite(high_from) and math.isfinite(medium_from)) or medium_from > high_from:
        raise ValueError("the thresholds must be finite numbers with medium_from <= high_from")
    x = pd.to_numeric(scores, errors="coerce").astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        levels = np.select(
            [x >= high_from, x >= medium_from, x < medium_from],
            [ScoreLevel.HIGH.value, ScoreLevel.MEDIUM.value, ScoreLevel.LOW.value],
            default=None,
        ).astype(object)
    return pd.Series(levels, index=scores.index, name="level", dtype=object)
