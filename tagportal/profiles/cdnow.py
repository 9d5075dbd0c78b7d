"""The CDNOW purchase data (``../shared/datasets/cdnow/``) as TagPortal orders.

``CDNOW_master.txt`` has a header line and four whitespace-separated columns
(customer_id, date, number_of_cds, dollar_value); ``CDNOW_sample.txt`` has no header
and five (customer_id, sample_customer_id, date, number_of_cds, dollar_value). Each
line is one order: the customer id becomes a CRM member id identity (as written,
``00004``, so the sample and the master name the same people), the date
(``YYYYMMDD``) a Beijing date (midnight), ``number_of_cds`` the quantity and
``dollar_value`` the amount. The n-th order of a customer on a day gets the client
id ``cdnow-<customer>-<date>-<n>``, so importing a file twice adds nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from django.conf import settings

from tagportal.core.days import BEIJING_ZONE

from .choices import IdentityType

SAMPLE = Path(settings.BASE_DIR) / "fixtures" / "cdnow" / "CDNOW_sample.txt"
SHARED = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "cdnow" / "CDNOW_master.txt"
MASTER_COLUMNS = ["customer_id", "date", "quantity", "amount"]
SAMPLE_COLUMNS = ["customer_id", "sample_customer_id", "date", "quantity", "amount"]


class CdnowFormatError(ValueError):
    pass


def default_file() -> Path:
    """The shipped sample, else the shared master file."""
    return SAMPLE if SAMPLE.exists() else SHARED


def read(source) -> pd.DataFrame:
    """Lines of a CDNOW file: ``customer_id`` (text), ``date`` (text), ``quantity``,
    ``amount``."""
    raw = pd.read_csv(source, sep=r"\s+", header=None, dtype=str, engine="python")
    if len(raw) and not raw.iloc[0, 0].isdigit():  # the master file's header line
        raw = raw.iloc[1:].reset_index(drop=True)
    if raw.shape[1] == 4:
        raw.columns = MASTER_COLUMNS
    elif raw.shape[1] == 5:
        raw.columns = SAMPLE_COLUMNS
    else:
        raise CdnowFormatError(f"expected 4 or 5 columns, found {raw.shape[1]}")
    out = raw[["customer_id", "date"]].copy()
    out["quantity"] = pd.to_numeric(raw["quantity"], errors="raise").astype("int64")
    out["amount"] = pd.to_numeric(raw["amount"], errors="raise").astype("float64")
    return out


def to_orders(lines: pd.DataFrame) -> pd.DataFrame:
    """An ``orders`` import frame (see :mod:`.importers`)."""
    day = pd.to_datetime(lines["date"], format="%Y%m%d")
    time = day.dt.tz_localize(BEIJING_ZONE).dt.tz_convert("UTC")
    nth = lines.groupby(["customer_id", "date"], sort=False).cumcount() + 1
    return pd.DataFrame(
        {
            "client_id": "cdnow-" + lines["customer_id"] + "-" + lines["date"] + "-" + nth.astype(str),
            "time": time,
            "amount": lines["amount"].round(2),
            "quantity": lines["quantity"],
            "channel": "web",
            "category": "CD",
            IdentityType.CRM_MEMBER_ID.value: lines["customer_id"],
        }
    )
