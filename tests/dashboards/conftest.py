"""Shared set-up for the dashboards tests: stored reports with hand-written data in the
formats of :mod:`tagportal.governance.reports` (not built by the builders), and the
``world`` of tests/conftest.py with its two tags published, made once per test module."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from tagportal.catalog.models import Tag
from tagportal.catalog.services import publish_tag
from tagportal.governance.choices import ReportStatus
from tagportal.governance.models import Report
from tagportal.governance.reports import tag_brief

from ..conftest import World, in_module_transaction, make_world
from ..factories import CategoryFactory, TagFactory

PAGES = [
    "/dashboards/",
    "/dashboards/activity/",
    "/dashboards/usage/",
    "/dashboards/cold/",
    "/dashboards/quality/",
    "/dashboards/duplicates/",
    "/dashboards/reports/",
]
END = dt.date(2026, 3, 29)
WEEKS = ["2026-03-09", "2026-03-16", "2026-03-23"]
WEIGHTS = {"usage": 0.40, "coverage": 0.20, "computation": 0.15, "lineage": 0.15, "cost": 0.10}
_keys = itertools.count()


def make_report(
    kind: str,
    rows: list[dict],
    meta: dict | None = None,
    *,
    business_line=None,
    brand=None,
    region=None,
    end: dt.date = END,
    status: str = ReportStatus.SUCCESS,
    **fields,
) -> Report:
    return Report.objects.create(
        kind=kind,
        business_line=business_line,
        brand=brand,
        region=region,
        period_start=end - dt.timedelta(days=89),
        period_end=end,
        key=f"test-{kind}-{next(_keys)}",
        status=status,
        trigger="portal",
        requested_at=timezone.now(),
        finished_at=timezone.now() if status == ReportStatus.SUCCESS else None,
        duration_s=0.42,
        runs=1,
        row_count=len(rows),
        data={"meta": meta or {}, "rows": rows},
        params={"business_line": None, "brand": None, "region": None, "extra": {}},
        **fields,
    )


def brief(tag: Tag) -> dict:
    tag.refresh_from_db()
    return tag_brief(tag)


def usage_row(
    tag: Tag, weekly=(0, 0, 0), uses=(0, 0, 0), trend="flat", by_client=None, last_used=None
) -> dict:
    u7, u30, u90 = uses
    return {
        **brief(tag),
        "uses": {
            "7": {"api_read": u7, "total": u7},
            "30": {"api_read": u30, "total": u30},
            "90": {"api_read": u90, "total": u90},
        },
        "total": sum(weekly),
        "by_client": by_client or {},
        "weekly": list(weekly),
        "trend": trend,
        "trend_change": None,
        "last_used": last_used,
    }


def usage_meta(clients=None) -> dict:
    return {
        "windows": [7, 30, 90],
        "kinds": ["api_read"],
        "weeks": WEEKS,
        "clients": clients or {},
        "period": {"start": "2025-12-30", "end": str(END)},
    }


def cold_row(
    tag: Tag,
    score: float,
    components: dict | None = None,
    reasons=None,
    coverage=0.5,
    psi=0.01,
    drift=False,
) -> dict:
    return {
        **brief(tag),
        "score": score,
        "cold": score >= 50,
        "components": components
        or {"usage": 1.0, "coverage": 0.5, "computation": 0, "lineage": 0, "cost": 0},
        "reasons": reasons if reasons is not None else [{"code": "never_used", "params": {"days": 90}}],
        "coverage": coverage,
        "psi": psi,
        "drift": drift,
        "uses_90": 0,
        "last_used": None,
        "population": 1000,
    }


def cold_meta() -> dict:
    return {"weights": WEIGHTS, "threshold": 50, "grace_days": 30, "cold_count": 0, "period": {}}


def pair_row(a: Tag, b: Tag, score=0.9, target=None, jaccard=0.8) -> dict:
    a, b = sorted((a, b), key=lambda t: t.pk)
    evidence = [
        {"kind": "definition", "hash": "abc"},
        {"kind": "name", "field": "name", "score": 0.92},
    ]
    if jaccard is not None:
        evidence.append(
            {"kind": "overlap", "jaccard": jaccard, "intersection": 80, "a_size": 90, "b_size": 100}
        )
    return {
        "a": brief(a),
        "b": brief(b),
        "evidence": evidence,
        "score": score,
        "target": (target or a).pk,
        "fingerprint": {},
    }


def activity_row(week, line, brand=None, region=None, **counts) -> dict:
    row = {"week": week, "business_line": line.pk, "brand": brand.pk if brand else None, "region": region}
    for measure in ("created", "changed", "approved", "used", "retired"):
        row[measure] = counts.get(measure, 0)
    return row


def make_dash() -> World:
    """:func:`make_world` with its two tags published, and a third tag in the own line
    in another category."""
    w = make_world()
    for tag in (w.own_tag, w.other_tag):
        publish_tag(tag)
    w.category2 = CategoryFactory(code="buy", name="购买行为")
    w.own_tag2 = TagFactory(
        brand=w.own_brand, category=w.category2, name="复购意向", code="yimei_buy_fu_gou_yi_xiang"
    )
    publish_tag(w.own_tag2)
    return w


@pytest.fixture(scope="module")
def dash_of_module(django_db_setup, django_db_blocker):
    """:func:`make_dash`, made once for the test module (see tests/conftest.py)."""
    yield from in_module_transaction(django_db_blocker, lambda: make_dash().references())


@pytest.fixture
def dash(dash_of_module, db):
    """:func:`make_dash`: the module's, read again for the test."""
    return World.read(dash_of_module)


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user


@pytest.fixture(autouse=True)
def fresh_report_cache():
    """Report ids are reused between tests (rolled back): start each without decoded data."""
    from tagportal.dashboards.data import clear_cache

    clear_cache()
    yield
    clear_cache()
