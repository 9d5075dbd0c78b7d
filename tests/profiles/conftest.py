"""Fixtures for profiles: files to import, a fixed clock for demo data, clients."""

import io

import pandas as pd
import pytest

from tagportal.profiles.choices import IdentityType

PHONE = "13812345678"
OTHER_PHONE = "13987654321"


def csv_upload(text: str, name: str = "data.csv", encoding: str = "utf-8") -> io.BytesIO:
    handle = io.BytesIO(text.encode(encoding))
    handle.name = name
    return handle


def parquet_upload(frame: pd.DataFrame, name: str = "data.parquet") -> io.BytesIO:
    handle = io.BytesIO()
    frame.to_parquet(handle, index=False)
    handle.seek(0)
    handle.name = name
    return handle


def links(*records) -> pd.DataFrame:
    """``links(("r1", "phone", PHONE), ("r1", "device_id", "d1"), ...)`` (app-less)."""
    rows = [(r, t, a[0] if a else "", v) for r, t, v, *a in records]
    return pd.DataFrame(rows, columns=["record", "type", "app", "value"])


@pytest.fixture
def brand(world):
    return world.own_brand


@pytest.fixture
def other_brand(world):
    return world.other_brand


EVENTS_CSV = (
    "client_id,time,type,channel,store,phone,wechat_unionid,properties.project\n"
    f"e1,2024-05-01 10:30:00,store_visit,store,上海静安店,{PHONE},oU1,\n"
    f"e2,2024-05-01 11:00:00,treatment,store,上海静安店,{PHONE},,热玛吉\n"
    "e3,2024-05-02T02:00:00Z,page_view,miniprogram,,,oU1,\n"
    "e4,2024-05-03 09:00:00,consultation,wecom,,,oU2,\n"
)

__all__ = ["EVENTS_CSV", "OTHER_PHONE", "PHONE", "IdentityType", "csv_upload", "links", "parquet_upload"]
