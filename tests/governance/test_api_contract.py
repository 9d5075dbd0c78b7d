"""The API contract (tests/api/contract.py) of the governance resources: change
requests, the inbox, re-certification, the audit trail and reports."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework.test import APIClient

from tagportal.catalog.models import Tag
from tagportal.governance import services as gov
from tagportal.governance.choices import ReportStatus
from tagportal.governance.models import ChangeRequest, Report
from tagportal.notifications.models import Notification

from ..api.contract import (
    CreateContract,
    ListContract,
    ReadContract,
    ReadOnlyRoleContract,
    Resource,
    ScopedContract,
    ScopedListContract,
    ScopedUpdateContract,
    UnauthenticatedWriteContract,
    UpdateContract,
    once,
)
from ..conftest import client_for
from .conftest import CR_URL, publish, update_spec


def published(world):
    """The world's two tags, published (version 1)."""

    def make():
        world.own_tag = publish(world.own_tag, user=world.admin)
        world.other_tag = publish(world.other_tag, user=world.admin)
        return True

    return once(world, "_published", make)


class TestChangeRequests(
    Resource,
    ReadContract,
    ScopedContract,
    CreateContract,
    UpdateContract,
    ScopedUpdateContract,
    UnauthenticatedWriteContract,
    ReadOnlyRoleContract,
):
    """Change requests are never deleted (withdrawn instead)."""

    url = CR_URL
    model = ChangeRequest
    write_only_fields = ("items",)

    def user(self, world):
        return world.operator

    def permitted(self, world):
        published(world)
        return once(world, "_own_cr", lambda: gov.propose(world.operator, [update_spec(world.own_tag)]))

    def other(self, world):
        published(world)
        return once(world, "_other_cr", lambda: gov.propose(world.admin, [update_spec(world.other_tag)]))

    def create_data(self, world):
        published(world)
        return {
            "title": "修改到店次数说明",
            "description": "补充预约到店的口径",
            "items": [{"kind": "update", "tag": world.own_tag.pk, "changes": {"description": "含预约到店"}}],
        }

    def update_data(self, world):
        return {"title": "到店次数口径", "description": "含预约到店，不含取消"}

    def test_delete_is_not_offered(self, world):
        cr = self.permitted(world)
        assert client_for(world.admin).delete(self.detail_url(cr.pk)).status_code == 405
        assert ChangeRequest.objects.filter(pk=cr.pk).exists()


class TestNotifications(Resource, ListContract, ScopedListContract):
    """The caller's inbox: another person's notification is not listed."""

    url = "/api/governance/notifications/"
    model = Notification

    def user(self, world):
        return world.operator

    def permitted(self, world):
        return once(
            world,
            "_own_note",
            lambda: Notification.objects.create(recipient=world.operator, subject="审批通过"),
        )

    def other(self, world):
        return once(
            world,
            "_other_note",
            lambda: Notification.objects.create(recipient=world.steward, subject="待审批"),
        )

    def test_mark_read_reaches_only_the_callers_notifications(self, world):
        own, other = self.permitted(world), self.other(world)
        client = self.client(world)
        response = client.post(f"{self.url}mark-read/", {"ids": [own.pk, other.pk]}, format="json")
        assert response.status_code == 200
        assert response.json() == {"marked": 1}
        own.refresh_from_db()
        other.refresh_from_db()
        assert own.read_at is not None
        assert other.read_at is None

    def test_no_other_writes(self, world):
        own = self.permitted(world)
        client = client_for(world.admin)
        assert client.post(self.url, {"subject": "x"}, format="json").status_code == 405
        assert client.delete(self.url).status_code == 405
        assert APIClient().post(f"{self.url}mark-read/", {}, format="json").status_code == 401
        own.refresh_from_db()
        assert own.read_at is None


class TestRecertification(Resource, ListContract, ScopedListContract):
    """Tags due for re-certification in the caller's business lines; ``certify`` is the write."""

    url = "/api/governance/recertification/"
    model = Tag
    paginated = False

    def user(self, world):
        return world.steward

    def _due(self, world):
        published(world)
        long_ago = timezone.now() - dt.timedelta(days=3650)
        Tag.objects.filter(pk__in=[world.own_tag.pk, world.other_tag.pk]).update(certified_at=long_ago)
        return long_ago

    def permitted(self, world):
        once(world, "_due", lambda: self._due(world))
        return world.own_tag

    def other(self, world):
        once(world, "_due", lambda: self._due(world))
        return world.other_tag

    def certify(self, user, tag):
        return client_for(user).post(f"{self.url}{tag.pk}/certify/", {"note": "已复核"}, format="json")

    def test_certify_a_permitted_tag(self, world):
        tag = self.permitted(world)
        response = self.certify(self.user(world), tag)
        assert response.status_code == 200, response.content
        assert response.json()["id"] == tag.pk
        tag.refresh_from_db()
        assert tag.certified_by == world.steward

    def test_certify_another_business_lines_tag_is_404(self, world):
        other = self.other(world)
        before = self.snapshot(other)
        assert self.certify(self.user(world), other).status_code == 404
        assert self.snapshot(other) == before

    def test_read_only_role_may_not_certify(self, world):
        tag = self.permitted(world)
        before = self.snapshot(tag)
        assert self.certify(self.read_only_user(world), tag).status_code == 403
        assert APIClient().post(f"{self.url}{tag.pk}/certify/", {}, format="json").status_code == 401
        assert self.snapshot(tag) == before


class TestAudit(Resource, ListContract, ScopedListContract):
    """The audit trail (JSON rows, no ids): the own tag's edits are in it, the other
    business line's are not. Only stewards and admins read it."""

    url = "/api/governance/audit/"
    model = Tag
    paginated = False
    id_field = "tag_code"

    def user(self, world):
        return world.steward

    def list_params(self, world):
        today = timezone.localdate()
        return {"start": str(today - dt.timedelta(days=1)), "end": str(today + dt.timedelta(days=1))}

    def permitted(self, world):
        return world.own_tag

    def other(self, world):
        return world.other_tag

    def key(self, obj):
        return obj.code

    def rows(self, response):
        body = response.json()
        assert body["count"] == len(body["rows"])
        return body["rows"]

    def test_read_only_role_may_not_read_it(self, world):
        response = client_for(self.read_only_user(world)).get(self.url, self.list_params(world))
        assert response.status_code == 403
        assert world.own_tag.code not in response.content.decode()

    def test_no_writes(self, world):
        client = client_for(world.admin)
        assert client.post(self.url, {}, format="json").status_code == 405
        assert client.delete(self.url).status_code == 405


def _report(world, business_line) -> Report:
    end = timezone.localdate() - dt.timedelta(days=1)
    return Report.objects.create(
        kind="usage",
        business_line=business_line,
        period_start=end - dt.timedelta(days=29),
        period_end=end,
        key=f"contract-usage-{business_line.code}",
        status=ReportStatus.SUCCESS,
        trigger="command",
        requested_at=timezone.now(),
        data={"meta": {}, "rows": []},
        params={"business_line": business_line.code, "brand": None, "region": None, "extra": {}},
    )


class TestReports(Resource, ReadContract, ScopedContract, ReadOnlyRoleContract):
    """Reports are run (``POST``), read and turned into cleanups; never edited or deleted."""

    url = "/api/governance/reports/"
    model = Report

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return once(world, "_own_report", lambda: _report(world, world.own_line))

    def other(self, world):
        return once(world, "_other_report", lambda: _report(world, world.other_line))

    def create_data(self, world):
        return {"kind": "usage", "business_line": world.own_line.code}

    def update_data(self, world):
        return {"status": "failed"}

    def test_run(self, world):
        before = self.count()
        response = self.client(world).post(self.url, self.create_data(world), format="json")
        assert response.status_code == 200, response.content
        assert response.json()["business_line"] == world.own_line.code
        assert response.json()["status"] == ReportStatus.SUCCESS
        assert self.count() == before + 1
        assert self.client(world).get(self.detail_url(response.json()["id"])).status_code == 200

    def test_unauthenticated_run(self, world):
        before = self.count()
        assert APIClient().post(self.url, self.create_data(world), format="json").status_code == 401
        assert self.count() == before

    def test_cleanup_of_another_business_lines_report_is_404(self, world):
        other = self.other(world)
        before = ChangeRequest.objects.count()
        payload = {"action": "deprecate", "findings": [str(world.other_tag.pk)]}
        response = self.client(world).post(self.detail_url(other.pk) + "cleanup/", payload, format="json")
        assert response.status_code == 404
        assert ChangeRequest.objects.count() == before

    def test_no_update_or_delete(self, world):
        report = self.permitted(world)
        before = self.snapshot(report)
        client = client_for(world.admin)
        assert (
            client.patch(self.detail_url(report.pk), {"status": "failed"}, format="json").status_code == 405
        )
        assert client.delete(self.detail_url(report.pk)).status_code == 405
        assert self.snapshot(report) == before
