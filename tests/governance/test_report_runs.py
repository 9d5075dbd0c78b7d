"""Running reports: the schedules, the command, the Celery hand-off, failures, the API,
and buffered usage counted by the next report."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from tagportal.governance.choices import ReportKind, ReportStatus, ReportTrigger
from tagportal.governance.models import Report
from tagportal.governance.reports import service
from tagportal.usage import services as usage

from ..conftest import client_for

YESTERDAY = usage.beijing_today() - dt.timedelta(days=1)


def test_schedules_are_created_in_beijing_time(db):
    from django_celery_beat.models import PeriodicTask

    tasks = {t.task: t for t in PeriodicTask.objects.filter(task__startswith="tagportal.")}
    assert {"tagportal.usage.tasks.aggregate_usage", "tagportal.governance.tasks.scheduled_reports"} <= set(
        tasks
    )
    assert "tagportal.governance.tasks.aggregate_usage" not in tasks
    daily = tasks["tagportal.usage.tasks.aggregate_usage"].crontab
    assert str(daily.timezone) == "Asia/Shanghai" and (daily.hour, daily.minute) == ("0", "10")
    weekly = tasks["tagportal.governance.tasks.scheduled_reports"].crontab
    assert str(weekly.timezone) == "Asia/Shanghai" and weekly.day_of_week == "1"
    assert service.ensure_report_schedules() == []  # idempotent


def test_command_runs_each_kind(world):
    out = StringIO()
    call_command("run_report", "--kind", "usage", "--kind", "cold", "--business-line", "yimei", stdout=out)
    reports = Report.objects.order_by("kind")
    assert [r.kind for r in reports] == ["cold", "usage"]
    assert all(r.status == ReportStatus.SUCCESS and r.trigger == ReportTrigger.COMMAND for r in reports)
    yesterday = usage.beijing_today() - dt.timedelta(days=1)  # read now: the run may cross midnight
    assert all(r.business_line == world.own_line and r.period_end == yesterday for r in reports)
    assert "usage" in out.getvalue() and "success" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--end", "2999-01-01"], "future"),
        (["--start", "2026-11-20", "--end", "2026-11-10"], "empty"),
        (["--end", "yesterday"], "Not a date"),
        (["--business-line", "nope"], "No such"),
    ],
)
def test_command_refuses_bad_parameters(world, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("run_report", "--kind", "usage", *args, stdout=StringIO())
    assert not Report.objects.exists()


def test_every_line_makes_one_report_per_line_and_one_for_all(world):
    call_command("run_report", "--kind", "activity", "--every-line", stdout=StringIO())
    lines = sorted((r.business_line.code if r.business_line else "") for r in Report.objects.all())
    assert lines == ["", "shipin", "yimei"]


def test_same_parameters_rewrite_the_same_report(world):
    first = service.request_report(world.admin, ReportKind.USAGE, run_now=True, end=YESTERDAY)
    second = service.request_report(
        world.steward, ReportKind.USAGE, run_now=True, end=YESTERDAY, business_line="yimei"
    )
    again = service.request_report(world.admin, ReportKind.USAGE, run_now=True, end=YESTERDAY)
    assert again.pk == first.pk != second.pk
    assert again.runs == 2 and again.data == first.data
    assert Report.objects.count() == 2


def test_with_a_broker_the_report_goes_to_celery_after_commit(world, django_capture_on_commit_callbacks):
    with mock.patch("tagportal.governance.tasks.run_report.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            report = service.request_report(world.admin, ReportKind.COLD, run_now=False)
    delay.assert_called_once_with(report.pk)
    assert report.status == ReportStatus.PENDING


def test_a_running_report_is_not_started_twice_unless_stuck(world):
    report = service.request_report(world.admin, ReportKind.COLD, run_now=True)
    Report.objects.filter(pk=report.pk).update(status=ReportStatus.RUNNING, started_at=timezone.now())
    with mock.patch.object(service, "run") as run:
        assert service.request_report(world.admin, ReportKind.COLD, run_now=True).pk == report.pk
        run.assert_not_called()
        Report.objects.filter(pk=report.pk).update(started_at=timezone.now() - dt.timedelta(hours=2))
        service.request_report(world.admin, ReportKind.COLD, run_now=True)
        run.assert_called_once()


def test_a_failing_builder_is_recorded_not_raised(world):
    with mock.patch.object(service, "build", side_effect=RuntimeError("数据库断开")):
        report = service.request_report(world.admin, ReportKind.MERGE, run_now=True)
    assert report.status == ReportStatus.FAILED and "数据库断开" in report.error
    assert report.duration_s is not None


def test_buffered_uses_count_in_the_next_report(world):
    from tagportal.catalog.services import publish_tag

    publish_tag(world.own_tag)  # drafts are not in the usage report
    usage.record({world.own_tag.pk: 3}, client=world.analyst.pk, kind=usage.UsageKind.API_READ)
    report = service.request_report(world.admin, ReportKind.USAGE, run_now=True, end=usage.beijing_today())
    row = next(r for r in report.data["rows"] if r["tag"] == world.own_tag.pk)
    assert row["uses"]["7"]["api_read"] == 3 and row["by_client"] == {str(world.analyst.pk): 3}
    assert not usage.UsageBuffer.objects.exists()


@pytest.mark.parametrize(
    ("user", "payload", "status"),
    [
        ("steward", {"kind": "usage", "business_line": "yimei"}, 200),
        ("steward", {"kind": "usage"}, 403),  # every business line needs an unrestricted reach
        ("steward", {"kind": "usage", "business_line": "shipin"}, 403),
        ("steward", {"kind": "usage", "business_line": "yimei", "period_end": "2999-01-01"}, 400),
        (
            "steward",
            {
                "kind": "usage",
                "business_line": "yimei",
                "period_start": "2026-11-20",
                "period_end": "2026-11-01",
            },
            400,
        ),
        ("steward", {"kind": "haunted"}, 400),
        ("analyst", {"kind": "usage", "business_line": "yimei"}, 403),
        ("admin", {"kind": "merge"}, 200),
    ],
)
def test_api_runs_reports(world, user, payload, status):
    response = client_for(getattr(world, user)).post("/api/governance/reports/", payload, format="json")
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json()["status"] == ReportStatus.SUCCESS
        assert Report.objects.get().trigger == ReportTrigger.API
    else:
        assert response.json()
        assert not Report.objects.exists()


def test_make_scope_defaults(world):
    scope = service.make_scope(ReportKind.ACTIVITY, brand="ruiyan", today=dt.date(2026, 12, 2))
    assert scope.end == dt.date(2026, 12, 1) and scope.days == 182
    assert scope.business_line == world.own_line  # the brand's line
    with pytest.raises(ValidationError, match="another business line"):
        service.make_scope(ReportKind.USAGE, brand="ruiyan", business_line="shipin")


def test_a_report_whose_worker_died_is_recorded_and_requested_again(
    world, django_capture_on_commit_callbacks
):
    from tagportal.core import claims
    from tagportal.governance import tasks

    with mock.patch.object(tasks.run_report, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            report = service.request_report(world.admin, ReportKind.USAGE, run_now=False)
        # the worker claimed it, marked it running, and was killed
        killed = claims.acquire(*service.claim_of(report))
        Report.objects.filter(pk=report.pk).update(status=ReportStatus.RUNNING, started_at=timezone.now())
        soon = timezone.now() + dt.timedelta(minutes=4)
        with django_capture_on_commit_callbacks(execute=True):
            assert claims.reap(now=soon) == [killed.key]
    report.refresh_from_db()
    assert report.status == ReportStatus.PENDING and "lost" in report.error
    assert delay.call_count == 2  # the request, and the request again
    # the requeued task builds it
    assert tasks.run_report.apply(args=(report.pk,)).get()["status"] == ReportStatus.SUCCESS
    report.refresh_from_db()
    assert report.status == ReportStatus.SUCCESS and report.error == "" and report.runs == 1
    # the broker's late redelivery of the killed task is one of the request done: not stuck
    assert claims.acquire(*service.claim_of(report)).key != killed.key


def test_an_abandoned_report_may_be_requested_at_once(world):
    from tagportal.core import claims

    with mock.patch("tagportal.governance.tasks.run_report.delay"):
        report = service.request_report(world.admin, ReportKind.COLD, run_now=False)
        claims.acquire(*service.claim_of(report))
        Report.objects.filter(pk=report.pk).update(status=ReportStatus.RUNNING, started_at=timezone.now())
        with mock.patch.object(service, "run") as run:
            service.request_report(world.admin, ReportKind.COLD, run_now=True)
            run.assert_not_called()  # running, and its worker alive
            claims.reap(now=timezone.now() + dt.timedelta(minutes=4))
            service.request_report(world.admin, ReportKind.COLD, run_now=True)
            run.assert_called_once()
