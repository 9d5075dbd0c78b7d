"""Downloading a report: CSV (with a BOM, for Excel), Excel and JSON, only for those who
may view it, its rows narrowed to the tags they may view."""

import csv
import io
import json

import pytest
from openpyxl import load_workbook

from tagportal.governance.choices import ReportKind, ReportStatus

from ..factories import TagFactory
from ..formula_guard import HOSTILE, assert_csv_guarded, assert_xlsx_guarded
from .conftest import WEEKS, activity_row, cold_meta, cold_row, make_report, pair_row, usage_meta, usage_row

pytestmark = pytest.mark.django_db


def url(report, fmt="csv", extra=""):
    return f"/dashboards/reports/{report.pk}/download/?format={fmt}{extra}"


def csv_rows(response) -> list[dict]:
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


@pytest.fixture
def cold_report(dash):
    return make_report(
        ReportKind.COLD,
        [cold_row(dash.other_tag, 90), cold_row(dash.own_tag2, 72), cold_row(dash.own_tag, 20)],
        cold_meta(),
    )


def test_csv_of_a_cold_report(dash, login, cold_report):
    response = login(dash.steward).get(url(cold_report))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="tagportal-cold-' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert [row["code"] for row in rows] == [dash.own_tag2.code, dash.own_tag.code]
    assert rows[0]["name"] == "复购意向"
    assert rows[0]["score"] == "72"
    assert rows[0]["reasons"] == "Not used in the last 90 days"
    assert rows[0]["components.usage"] == "1.0"
    assert "购买次数" not in response.content.decode()


def test_admin_downloads_every_row(dash, login, cold_report):
    rows = csv_rows(login(dash.admin).get(url(cold_report)))
    assert len(rows) == 3


def test_xlsx(dash, login, cold_report):
    response = login(dash.steward).get(url(cold_report, "xlsx"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(response.content))
    sheet = book.worksheets[0]
    values = list(sheet.values)
    header = list(values[0])
    assert header[:3] == ["tag", "code", "name"]
    assert [row[header.index("name")] for row in values[1:]] == ["复购意向", "到店次数"]
    assert "Not used in the last 90 days" in values[1][header.index("reasons")]


def test_csv_and_xlsx_guard_formulas(dash, login):
    tags = [
        TagFactory(
            brand=dash.own_brand, category=dash.category, code=f"yimei_visit_hostile_{number}", name=name
        )
        for number, name in enumerate(HOSTILE)
    ]
    report = make_report(ReportKind.COLD, [cold_row(tag, 60) for tag in tags], cold_meta())
    assert_csv_guarded(login(dash.steward).get(url(report)).content)
    assert_xlsx_guarded(login(dash.steward).get(url(report, "xlsx")).content)


def test_json(dash, login, cold_report):
    response = login(dash.steward).get(url(cold_report, "json"))
    body = json.loads(response.content)
    assert body["report"]["kind"] == "cold"
    assert [row["tag"] for row in body["rows"]] == [dash.own_tag2.pk, dash.own_tag.pk]
    assert body["rows"][0]["reasons_text"] == ["Not used in the last 90 days"]
    assert body["meta"]["cold_count"] == 1  # of the visible rows


def test_usage_csv_has_weeks_and_clients(dash, login):
    report = make_report(
        ReportKind.USAGE,
        [usage_row(dash.own_tag, weekly=(1, 2, 3), uses=(3, 6, 6), by_client={"7": 6})],
        usage_meta({"7": "小程序后台"}),
    )
    (row,) = csv_rows(login(dash.steward).get(url(report)))
    assert [row[f"weekly.{week}"] for week in WEEKS] == ["1", "2", "3"]
    assert row["by_client.小程序后台"] == "6"
    assert row["uses.90.total"] == "6"


def test_merge_csv_has_evidence_in_words(dash, login):
    report = make_report(
        ReportKind.MERGE,
        [pair_row(dash.own_tag, dash.own_tag2, target=dash.own_tag2), pair_row(dash.own_tag, dash.other_tag)],
    )
    (row,) = csv_rows(login(dash.steward).get(url(report)))
    assert row["evidence"] == "same definition; similar names (0.92); members overlap (Jaccard 80%)"
    assert row["target_code"] == dash.own_tag2.code
    assert {row["a.name"], row["b.name"]} == {"到店次数", "复购意向"}


def test_activity_csv_keeps_visible_lines(dash, login):
    report = make_report(
        ReportKind.ACTIVITY,
        [
            activity_row(WEEKS[0], dash.own_line, dash.own_brand, changed=2),
            activity_row(WEEKS[0], dash.other_line, dash.other_brand, changed=5),
        ],
        {
            "weeks": WEEKS,
            "business_lines": {str(dash.own_line.pk): "医美", str(dash.other_line.pk): "食品饮料"},
        },
    )
    response = login(dash.operator).get(url(report))
    (row,) = csv_rows(response)
    assert row["business_line_name"] == "医美" and row["changed"] == "2"
    body = json.loads(login(dash.operator).get(url(report, "json")).content)
    assert body["meta"]["business_lines"] == {str(dash.own_line.pk): "医美"}
    assert "食品饮料" not in json.dumps(body, ensure_ascii=False)


def test_a_report_of_another_line_is_a_404(dash, login):
    report = make_report(
        ReportKind.COLD, [cold_row(dash.other_tag, 90)], cold_meta(), business_line=dash.other_line
    )
    response = login(dash.operator).get(url(report))
    assert response.status_code == 404
    assert "you may not see it" in response.content.decode()


def test_bad_downloads(dash, login, cold_report, client):
    assert login(dash.steward).get(url(cold_report, "pdf")).status_code == 400
    assert login(dash.steward).get("/dashboards/reports/999999/download/").status_code == 404
    pending = make_report(ReportKind.COLD, [], status=ReportStatus.PENDING)
    assert login(dash.steward).get(url(pending)).status_code == 404
    client.logout()
    assert client.get(url(cold_report)).status_code == 302
