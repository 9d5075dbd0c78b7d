"""``fit_clv``: fit BG/NBD and Gamma-Gamma to a transaction file, print one JSON object.

``python manage.py fit_clv PATH --format cdnow|csv --calibration-end YYYY-MM-DD
[--holdout-end YYYY-MM-DD]``

Formats: ``cdnow`` is a CDNOW master or sample file (see :mod:`tagportal.profiles.cdnow`);
``csv`` is a CSV file with a header and the columns ``customer_id``, ``date`` (a date
``YYYY-MM-DD`` or an ISO 8601 time; a time with an offset counts in its Beijing date) and
``amount``; other columns are ignored.

Without ``--holdout-end`` the holdout runs to the last date in the file ("holdout" is
``null`` when there is nothing after the calibration end). The summary and models follow
:mod:`tagportal.predictive.clv`. Standard output is exactly one JSON object::

    {"customers", "repeat_buyers", "bgnbd": {"r", "alpha", "a", "b", "log_likelihood"},
     "gamma_gamma": {"p", "q", "v"}, "holdout": {"actual_repeat", "predicted_repeat", "weeks"}}

``predicted_repeat`` is the sum over the customers of the BG/NBD conditional expected
transactions in the holdout weeks. Bad input ends in a ``CommandError``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.predictive import clv
from tagportal.profiles import cdnow

CSV_COLUMNS = ("customer_id", "date", "amount")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(_("Not a date (YYYY-MM-DD): %(text)s") % {"text": text}) from None


def read_transactions(path: Path, fmt: str) -> pd.DataFrame:
    """The file's transactions: ``customer_id`` (text), ``time``, ``amount``."""
    if not path.is_file():
        raise CommandError(_("No such file: %(path)s") % {"path": path})
    try:
        if fmt == "cdnow":
            lines = cdnow.read(path)
            time = pd.to_datetime(lines["date"], format="%Y%m%d")
            frame = pd.DataFrame(
                {"customer_id": lines["customer_id"], "time": time, "amount": lines["amount"]}
            )
        else:
            raw = pd.read_csv(path, dtype={"customer_id": str, "date": str})
            missing = [c for c in CSV_COLUMNS if c not in raw.columns]
            if missing:
                raise CommandError(
                    _("The CSV file lacks the columns: %(columns)s") % {"columns": ", ".join(missing)}
                )
            if raw["customer_id"].isna().any():
                raise CommandError(_("The CSV file has rows without a customer_id."))
            time = pd.to_datetime(raw["date"], format="ISO8601")
            amount = pd.to_numeric(raw["amount"], errors="raise").astype("float64")
            frame = pd.DataFrame({"customer_id": raw["customer_id"], "time": time, "amount": amount})
    except CommandError:
        raise
    except pd.errors.EmptyDataError:
        raise CommandError(_("The file is empty: %(path)s") % {"path": path}) from None
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise CommandError(_("The file cannot be read: %(error)s") % {"error": exc}) from None
    if frame.empty:
        raise CommandError(_("The file is empty: %(path)s") % {"path": path})
    if frame["time"].isna().any() or frame["amount"].isna().any():
        raise CommandError(_("The file has rows without a date or an amount."))
    return frame


class Command(BaseCommand):
    help = gettext_lazy(
        "Fit BG/NBD and Gamma-Gamma to a transaction file (CDNOW or CSV customer_id,date,amount) "
        "and print the parameters and the holdout fit as one JSON object."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help=gettext_lazy("The transaction file."))
        parser.add_argument(
            "--format", choices=["cdnow", "csv"], default="cdnow", help=gettext_lazy("The file format.")
        )
        parser.add_argument(
            "--calibration-end", required=True, help=gettext_lazy("The last calibration day, YYYY-MM-DD.")
        )
        parser.add_argument(
            "--holdout-end", help=gettext_lazy("The last holdout day, YYYY-MM-DD (default: the last date).")
        )

    def handle(self, *args, **options):
        calibration_end = _date(options["calibration_end"])
        holdout_end = options["holdout_end"] and _date(options["holdout_end"])
        if holdout_end and holdout_end <= calibration_end:
            raise CommandError(_("The holdout end must be after the calibration end."))
        frame = read_transactions(Path(options["path"]), options["format"])
        if holdout_end is None:
            last = clv.to_day(frame["time"].max())
            holdout_end = last.astype(dt.date) if last > np.datetime64(calibration_end, "D") else None
        try:
            with np.errstate(all="ignore"):
                result = self.fit(frame, calibration_end, holdout_end)
        except clv.ClvError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result))

    @staticmethod
    def fit(frame: pd.DataFrame, calibration_end: dt.date, holdout_end: dt.date | None) -> dict:
        summary = clv.summary_from_orders(frame, calibration_end, holdout_end, customer="customer_id")
        if summary.empty:
            raise clv.ClvError(_("No customer bought on or before the calibration end."))
        x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
        bgnbd = clv.fit_bgnbd(x, t_x, T)
        gamma_gamma = clv.fit_gamma_gamma(x, summary["monetary_value"])
        holdout = None
        if holdout_end is not None:
            weeks = clv.weeks_between(calibration_end, holdout_end)
            holdout = {
                "actual_repeat": int(summary["holdout_frequency"].sum()),
                "predicted_repeat": float(bgnbd.expected_purchases(weeks, x, t_x, T).sum()),
                "weeks": weeks,
            }
        return {
            "customers": len(summary),
            "repeat_buyers": int((x > 0).sum()),
            "bgnbd": {k: bgnbd.to_dict()[k] for k in ("r", "alpha", "a", "b", "log_likelihood")},
            "gamma_gamma": {k: gamma_gamma.to_dict()[k] for k in ("p", "q", "v")},
            "holdout": holdout,
        }
