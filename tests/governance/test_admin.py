"""The governance admin: change requests and reports to look at, scoped like every admin
page. A change request's state changes only through the services (the review pages,
the API): the admin shows it, its changes and comments, and links to its review page."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tagportal.governance import services as gov
from tagportal.governance.choices import ReportKind, ReportStatus, ReportTrigger, RequestState
from tagportal.governance.models import Report

from .conftest import fresh, governance_state, request_in_state, update_spec

pytestmark = pytest.mark.django_db

CR_ADMIN = "/admin/governance/changerequest/"
REPORT_ADMIN = "/admin/governance/report/"
_keys = itertools.count()


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def listed(client, url) -> set:
    response = client.get(url)
    assert response.status_code == 200
    return set(response.context["cl"].result_list)


@pytest.fixture
def requests(gw):
    """A request of each business line; the own one sent back with a comment."""
    own = request_in_state(gw, RequestState.CHANGES_REQUESTED)
    gov.comment(gw.operator, own, "口径已补充，请再看")
    other = gov.propose(gw.other_operator, [update_spec(gw.other_tag)])
    return own, other


def test_change_requests_are_listed_within_the_viewers_scope(gw, requests):
    own, other = requests
    assert listed(login(gw.steward), CR_ADMIN) == {own}
    assert listed(login(gw.other_steward), CR_ADMIN) == {other}
    assert listed(login(gw.admin), CR_ADMIN) == {own, other}
    # another line's request is not found, as if it did not exist
    response = login(gw.steward).get(f"{CR_ADMIN}{other.pk}/change/")
    assert response.status_code == 404


def test_a_change_request_shows_its_changes_comments_and_review_page(gw, requests):
    own, _other = requests
    response = login(gw.steward).get(f"{CR_ADMIN}{own.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    items = re.search(
        r'<div class="js-inline-admin-formset inline-group" id="items-group".*?</fieldset>', html, re.S
    )
    assert items and gw.own_tag.code in items.group(0)  # the change's tag
    assert "口径已补充，请再看" in html and "请补充口径说明" in html  # the comments
    assert f'href="{reverse("governance:request", args=[own.pk])}"' in html
    assert response.context["adminform"].form.fields == {}  # every field read-only
    assert not response.context["has_change_permission"]


def test_the_admin_never_changes_a_request(gw, requests):
    own, _other = requests
    client = login(gw.admin)
    before = governance_state()
    url = f"{CR_ADMIN}{own.pk}/change/"
    assert client.post(url, {"state": RequestState.APPROVED, "title": "改"}).status_code == 403
    assert client.post(f"{CR_ADMIN}{own.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"{CR_ADMIN}add/").status_code == 403
    # nor through a past version from its history
    past = own.history.order_by("history_date", "history_id").first()
    history_url = f"{CR_ADMIN}{own.pk}/history/{past.history_id}/"
    assert client.get(f"{CR_ADMIN}{own.pk}/history/").status_code == 200
    assert client.post(history_url, {}).status_code == 403
    assert governance_state() == before
    assert fresh(own).state == RequestState.CHANGES_REQUESTED


def make_report(business_line=None, status=ReportStatus.SUCCESS) -> Report:
    end = dt.date(2026, 3, 29)
    return Report.objects.create(
        kind=ReportKind.USAGE,
        business_line=business_line,
        period_start=end - dt.timedelta(days=29),
        period_end=end,
        key=f"test-{next(_keys)}",
        status=status,
        trigger=ReportTrigger.PORTAL,
        requested_at=timezone.now(),
        finished_at=timezone.now() if status == ReportStatus.SUCCESS else None,
        data={"meta": {}, "rows": []},
    )


def test_reports_are_listed_within_scope_with_download_links(gw):
    own, other, every = make_report(gw.own_line), make_report(gw.other_line), make_report()
    running = make_report(gw.own_line, status=ReportStatus.RUNNING)
    client = login(gw.analyst)
    assert listed(client, REPORT_ADMIN) == {own, every, running}
    html = client.get(REPORT_ADMIN).content.decode()
    download = reverse("dashboards:download", args=[own.pk])
    assert f'href="{download}?format=xlsx"' in html and f'href="{download}?format=csv"' in html
    assert reverse("dashboards:download", args=[running.pk]) not in html  # not finished: nothing to download
    assert reverse("dashboards:download", args=[other.pk]) not in html
    page = client.get(f"{REPORT_ADMIN}{own.pk}/change/")
    assert page.status_code == 200 and f'href="{download}?format=json"' in page.content.decode()
    assert client.post(f"{REPORT_ADMIN}{own.pk}/change/", {"status": ReportStatus.FAILED}).status_code == 403
    assert fresh(own).status == ReportStatus.SUCCESS


def test_the_governance_admin_speaks_chinese(gw, requests):
    html = login(gw.steward).get(CR_ADMIN, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "变更单" in html and "审核页面" in html
