"""A report's meta and counts come from the rows the caller may see: a client granted
大健康 only is told nothing of the other business lines (their names, brands, clients,
totals or number of findings) by the API, the dashboards' downloads and lists, or the admin."""

from __future__ import annotations

import pytest
from django.test import Client

from tagportal.governance.choices import ReportKind, ReportStatus
from tagportal.governance.models import Report
from tagportal.governance.reports.service import request_report

from ..conftest import client_for
from ..factories import BrandFactory, BusinessLineFactory, UserFactory
from .test_reports import END, compute, days_before_end, make_tag, use

URL = "/api/governance/reports/"


@pytest.fixture
def health(world):
    """A third business line, 大健康, of two brands; in each brand of every line a used
    tag created in the period, its near twin and a quiet tag, used by a client of the
    line; a client granted 大健康 only; every report run over every line."""
    w = world
    w.health = BusinessLineFactory(code="dajiankang", name="大健康")
    w.health_brands = [
        BrandFactory(code="kangyuan", name="康源", business_line=w.health),
        BrandFactory(code="yangsheng", name="养生堂", business_line=w.health),
    ]
    w.client = UserFactory(username="health-client", display_name="健康数据接口", role="analyst")
    from tagportal.catalog.services import grant_business_line

    grant_business_line(w.client, w.health, "analysts")
    w.outsider = UserFactory(username="outsider-client", display_name="外部接口")
    brands = [w.own_brand, w.other_brand, *w.health_brands]
    w.health_tags = set()
    for number, brand in enumerate(brands):
        client = w.client if brand.business_line == w.health else w.outsider
        hot = make_tag(brand, w.category, f"hot{number}", name="热门标签", created=days_before_end(20))
        twin = make_tag(brand, w.category, f"twin{number}", name="热门 标签")
        quiet = make_tag(brand, w.category, f"quiet{number}", name="冷清标签")
        use(hot, days_before_end(1), 9, client=client.pk)
        use(twin, days_before_end(50), 4, client=client.pk)
        compute(hot, bitmaps={"true": range(100), "false": range(100, 200)})
        compute(twin, bitmaps={"true": range(1, 100), "false": range(100, 200)})
        if brand.business_line == w.health:
            w.health_tags |= {hot.pk, twin.pk, quiet.pk}
    w.reports = {}
    for kind in ReportKind.values:
        report = request_report(w.admin, kind, run_now=True, end=END)
        assert report.status == ReportStatus.SUCCESS, report.error
        w.reports[kind] = report
    return w


def names(meta: dict, key: str) -> set[str]:
    return set((meta.get(key) or {}).values())


def test_the_report_api_tells_a_health_client_of_health_only(health):
    w = health
    client = client_for(w.client)
    listed = {row["id"]: row for row in client.get(URL).json()["results"]}
    for kind, report in w.reports.items():
        body = client.get(f"{URL}{report.pk}/").json()
        rows, meta = body["rows"], body["meta"]
        assert rows, kind
        assert body["row_count"] == listed[report.pk]["row_count"] == len(rows) < report.row_count, kind
        if kind == ReportKind.MERGE:
            assert meta["pairs"] == len(rows)
            assert {row[side]["tag"] for row in rows for side in "ab"} <= w.health_tags
        elif kind == ReportKind.ACTIVITY:
            assert names(meta, "business_lines") == {"大健康"}
            assert names(meta, "brands") == {"康源", "养生堂"}
            assert set(meta["brand_totals"]) == {str(b.pk) for b in w.health_brands}
            assert meta["totals"]["created"] == 2  # the two hot tags of 大健康
            assert meta["totals"] != report.data["meta"]["totals"]
        else:
            assert {row["tag"] for row in rows} <= w.health_tags
        if kind == ReportKind.USAGE:
            assert names(meta, "clients") == {"健康数据接口"}
            assert names(report.data["meta"], "clients") == {"健康数据接口", "外部接口"}
        if kind == ReportKind.COLD:
            assert meta["cold_count"] == sum(1 for row in rows if row["cold"])
        text = str(body)
        for hidden in ("医美", "食品饮料", "瑞颜", "清泉", "外部接口"):
            assert hidden not in text, (kind, hidden)


def test_the_admin_sees_the_stored_meta_and_counts(health):
    w = health
    client = client_for(w.admin)
    for report in w.reports.values():
        body = client.get(f"{URL}{report.pk}/").json()
        assert body["row_count"] == report.row_count == len(body["rows"])
        assert body["meta"] == report.data["meta"]  # nothing to leave out: the meta as stored


def test_activity_totals_count_a_tag_of_two_regions_once(health):
    from ..factories import RegionFactory

    w = health
    regions = [RegionFactory(code="sh", name="上海"), RegionFactory(code="bj", name="北京")]
    make_tag(w.health_brands[0], w.category, "two_regions", created=days_before_end(10), regions=regions)
    report = request_report(w.admin, ReportKind.ACTIVITY, run_now=True, end=END)
    meta = client_for(w.client).get(f"{URL}{report.pk}/").json()["meta"]
    assert meta["totals"]["created"] == 3  # not 4: the tag counts once, not once per region
    assert names(meta, "regions") == {"上海", "北京"}


def test_dashboard_downloads_lists_and_the_admin_count_visible_findings(health):
    w = health
    web = Client()
    web.force_login(w.client)
    for kind, report in w.reports.items():
        body = web.get(f"/dashboards/reports/{report.pk}/download/?format=json").json()
        visible = client_for(w.client).get(f"{URL}{report.pk}/").json()
        assert len(body["rows"]) == visible["row_count"]
        for key in ("business_lines", "brands", "clients", "totals", "pairs", "cold_count"):
            assert body["meta"].get(key) == visible["meta"].get(key), (kind, key)
    listed = {row["report"].pk: row for row in web.get("/dashboards/reports/").context["rows"]}
    admin_page = web.get("/admin/governance/report/")
    assert admin_page.status_code == 200
    results = admin_page.context["cl"].result_list
    counted = admin_page.context["cl"].list_display
    findings = next(column for column in counted if callable(column))
    for report in results:
        expected = client_for(w.client).get(f"{URL}{report.pk}/").json()["row_count"]
        assert listed[report.pk]["findings"] == findings(report) == expected < report.row_count
    detail = web.get(f"/admin/governance/report/{w.reports['cold'].pk}/change/")
    assert detail.status_code == 200
    assert Report.objects.get(pk=w.reports["cold"].pk).row_count > 0
