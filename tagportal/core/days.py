"""Beijing days: times are stored in UTC, days are reasoned about in Beijing time.

The one definition of the Beijing zone and of the day helpers every app uses.

>>> import datetime as dt
>>> beijing_date(dt.datetime(2026, 1, 1, 16, 30, tzinfo=dt.UTC))  # 00:30 in Beijing
datetime.date(2026, 1, 2)
>>> beijing_midnight(dt.date(2026, 1, 2)).astimezone(dt.UTC)
datetime.datetime(2026, 1, 1, 16, 0, tzinfo=datetime.timezone.utc)
>>> beijing_text(dt.datetime(2026, 1, 1, 16, 30, tzinfo=dt.UTC))
'2026-01-02 00:30'
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone

#: The zone's name, for pandas (``tz_convert(BEIJING_ZONE)``).
BEIJING_ZONE = "Asia/Shanghai"
BEIJING = ZoneInfo(BEIJING_ZONE)


def beijing_date(moment: dt.datetime) -> dt.date:
    """The Beijing calendar date of a moment; a naive moment is taken as UTC."""
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(BEIJING).date()


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in Beijing (or the date of ``now``)."""
    return beijing_date(now or timezone.now())


def beijing_midnight(day: dt.date) -> dt.datetime:
    """The moment a Beijing day starts, as an aware datetime."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=BEIJING)


def beijing_text(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M", empty: str = "") -> str:
    """A moment written in Beijing time (``empty`` for none)."""
    if moment is None:
        return empty
    return timezone.localtime(moment, BEIJING).strftime(fmt)
