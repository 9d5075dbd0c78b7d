"""Reports of a business line with several brands: each report listed once, and read,
cleaned up and counted by stewards and operators who are not admins; every scoped
model's scope follows single-valued relations only, so no scope repeats a row."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.db.models import Q
from guardian.shortcuts import assign_perm

from tagportal.catalog.models import Brand
from tagportal.core.permissions import granted_pks
from tagportal.governance.choices import ReportKind, ReportStatus
from tagportal.governance.models import ChangeRequest, Report

from ..conftest import client_for
from ..factories import BrandFactory, UserFactory
from .conftest import bool_tag, publish

END = dt.date(2026, 11, 29)
URL = "/api/governance/reports/"


def make_report(kind: str, rows: list[dict], number: int, business_line=None, brand=None) -> Report:
    return Report.objects.create(
        kind=kind,
        business_line=business_line,
        brand=brand,
        period_start=END - dt.timedelta(days=89),
        period_end=END - dt.timedelta(days=number),
        key=f"{kind}-{number}",
        status=ReportStatus.SUCCESS,
        trigger="command",
        requested_at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        data={"meta": {}, "rows": rows},
        row_count=len(rows),
        params={"business_line": None, "brand": None, "region": None, "extra": {}},
    )


def cold_row(tag) -> dict:
    from tagportal.governance.reports import tag_brief

    return {
        **tag_brief(tag),
        "score": 80.0,
        "cold": True,
        "components": {"usage": 1.0},
        "reasons": [{"code": "never_used", "params": {"days": 90}}],
    }


@pytest.fixture
def brands(gw):
    """The own line has three brands, the other two; a brand operator of the second own brand;
    nine reports: of every line, of each line, of a brand."""
    gw.own_brand2 = BrandFactory(code="ruiyan2", name="瑞颜二号", business_line=gw.own_line)
    gw.own_brand3 = BrandFactory(code="ruiyan3", name="瑞颜三号", business_line=gw.own_line)
    gw.other_brand2 = BrandFactory(code="qingquan2", name="清泉二号", business_line=gw.other_line)
    gw.brand_operator = UserFactory(username="brand-op", role="operator")
    assign_perm("catalog.view_brand", gw.brand_operator, gw.own_brand2)
    gw.cold_tag = publish(
        bool_tag(gw.own_brand, gw.category, "leng_qing", name="冷清标签", owner=gw.operator)
    )
    rows = [cold_row(gw.cold_tag)]
    gw.reports = {}
    number = 0
    for line in (None, gw.own_line, gw.other_line):
        for kind in (ReportKind.COLD, ReportKind.USAGE):
            number += 1
            gw.reports[(kind, line and line.code)] = make_report(kind, rows, number, business_line=line)
    for brand in (gw.own_brand, gw.own_brand2, gw.other_brand):
        number += 1
        gw.reports[("cold", brand.code)] = make_report(
            ReportKind.COLD, [], number, business_line=brand.business_line, brand=brand
        )
    assert Report.objects.count() == 9
    return gw


def listed(user) -> list[int]:
    body = client_for(user).get(URL, {"page_size": 100}).json()
    return [row["id"] for row in body.get("results", body)]


@pytest.mark.parametrize("role", ["steward", "operator", "analyst", "admin"])
def test_each_report_is_listed_once(brands, role):
    user = getattr(brands, role)
    ids = listed(user)
    assert len(ids) == len(set(ids))
    visible = Report.objects.restrict(user, "view")
    assert visible.count() == len(set(visible.values_list("pk", flat=True)))
    expected = 9 if role == "admin" else 6  # not the other line's two reports nor its brand's
    assert len(ids) == visible.count() == expected


def test_a_brand_operator_sees_the_line_reports_once(brands):
    ids = listed(brands.brand_operator)
    reports = brands.reports
    assert sorted(ids) == sorted(
        r.pk for key, r in reports.items() if key[1] in (None, brands.own_line.code, brands.own_brand2.code)
    )


@pytest.mark.parametrize("role", ["steward", "operator"])
def test_retrieve_and_cleanup_for_a_line_with_several_brands(brands, role):
    user = getattr(brands, role)
    report = brands.reports[(ReportKind.COLD, brands.own_line.code)]
    client = client_for(user)
    detail = client.get(f"{URL}{report.pk}/")
    assert detail.status_code == 200, detail.content
    assert [row["tag"] for row in detail.json()["rows"]] == [brands.cold_tag.pk]
    made = client.post(
        f"{URL}{report.pk}/cleanup/",
        {"action": "deprecate", "findings": [str(brands.cold_tag.pk)], "reason": "不再使用"},
        format="json",
    )
    assert made.status_code == 201, made.content
    assert ChangeRequest.objects.get().items.get().tag == brands.cold_tag


def _lookups(q: Q):
    for child in q.children:
        if isinstance(child, Q):
            yield from _lookups(child)
        else:
            yield child[0]


def _many_valued_steps(model, lookup: str) -> list[str]:
    found = []
    for part in lookup.split("__"):
        if part == "pk":
            part = model._meta.pk.name
        try:
            field = model._meta.get_field(part)
        except Exception:  # a lookup name (in, isnull): the path ends here
            break
        if not field.is_relation:
            break
        if field.many_to_many or field.one_to_many:
            found.append(f"{model.__name__}.{part}")
        model = field.related_model
    return found


def test_no_scope_joins_a_many_valued_relation(brands):
    """A scope lookup through a reverse or many-to-many relation repeats rows: every
    scoped model's lookups must follow foreign keys only (subqueries for the rest)."""
    checked, offending = 0, []
    granted = granted_pks(brands.steward, Brand, "view")[0]
    for model in apps.get_models():
        for via in getattr(model, "scope", None) or ():
            q = via.lookup(granted) if callable(via.lookup) else Q(**{f"{via.lookup}__in": granted})
            for lookup in _lookups(q):
                checked += 1
                offending += _many_valued_steps(model, lookup)
    assert checked > 20
    assert offending == []
