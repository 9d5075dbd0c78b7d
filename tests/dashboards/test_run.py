""" "Run reports now" from the dashboard, and the whole path from the real builders to
the pages (a smoke test: the builders' own tests check their numbers)."""

import pytest
from django.contrib.messages import get_messages

from tagportal.governance.choices import ReportKind, ReportStatus
from tagportal.governance.models import Report

from .conftest import PAGES

pytestmark = pytest.mark.django_db

URL = "/dashboards/run/"


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_without_permission_is_a_403(dash, login):
    response = login(dash.analyst).post(URL, {"kind": ["cold"], "business_line": dash.own_line.pk})
    assert response.status_code == 403
    assert "You may not run reports." in response.content.decode()
    assert not Report.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "Choose a business line"),
        ({"business_line": "other"}, "You may not see the business line"),
        ({"business_line": "own", "start": "2026-03-10", "end": "2026-03-01"}, "The period is empty"),
        ({"business_line": "own", "start": "not a day"}, "Not a date"),
        ({"business_line": "own", "kind": ["nope"]}, "Choose which reports to run"),
        ({"business_line": "own", "kind": []}, "Choose which reports to run"),
    ],
)
def test_refusals_are_messages(dash, login, fields, message):
    post = {"kind": ["cold", "usage"], **fields}
    if post.get("business_line") == "own":
        post["business_line"] = dash.own_line.pk
    elif post.get("business_line") == "other":
        post["business_line"] = dash.other_line.pk
    response = login(dash.steward).post(URL, post)
    assert response.status_code == 302
    assert response["Location"].startswith("/dashboards/")
    assert any(message in m for m in messages_of(response))
    assert not Report.objects.filter(status=ReportStatus.SUCCESS).exists()


def test_run_every_report_then_read_the_pages(dash, login):
    client = login(dash.steward)
    response = client.post(URL, {"kind": ReportKind.values, "business_line": dash.own_line.pk})
    assert response.status_code == 302
    assert response["Location"] == f"/dashboards/?business_line={dash.own_line.pk}"
    texts = messages_of(response)
    assert len(texts) == 4 and all("done in" in t for t in texts), texts
    assert set(Report.objects.values_list("kind", "status")) == {
        (k, ReportStatus.SUCCESS) for k in ReportKind.values
    }
    for url in PAGES:
        page = client.get(url)
        assert page.status_code == 200, url
        assert "购买次数" not in page.content.decode(), url
    cold = client.get("/dashboards/cold/")
    assert cold.context["report_info"]["report"].kind == ReportKind.COLD
    usage = client.get("/dashboards/usage/")
    assert {row["brief"]["tag"] for row in usage.context["most"]} <= {dash.own_tag.pk, dash.own_tag2.pk}
    for report in Report.objects.all():
        for fmt in ("csv", "json", "xlsx"):
            download = client.get(f"/dashboards/reports/{report.pk}/download/?format={fmt}")
            assert download.status_code == 200, (report.kind, fmt)
