"""Cleanup: from a cold-tag or merge-suggestion finding to a bulk change request, the
checks that refuse stale or foreign findings (nothing created), owner notifications,
the automatic deprecation of tags cold twice in a row, and the report API."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag, TagAlias
from tagportal.governance import cleanup
from tagportal.governance import services as gov
from tagportal.governance.choices import ChangeKind, ReportKind, ReportStatus, RequestState
from tagportal.governance.models import ChangeRequest, Report
from tagportal.governance.reports import tag_brief
from tagportal.governance.reports.merge import fingerprint
from tagportal.notifications.models import Notification

from ..conftest import client_for
from .conftest import BOOL_DEF, bool_tag, draft_tag, fresh, governance_state, publish

END = dt.date(2026, 11, 29)


def make_report(kind: str, rows: list[dict], end: dt.date = END, business_line=None, **fields) -> Report:
    return Report.objects.create(
        kind=kind,
        business_line=business_line,
        period_start=end - dt.timedelta(days=89),
        period_end=end,
        key=f"{kind}-{end}-{business_line.pk if business_line else 'all'}-{Report.objects.count()}",
        status=ReportStatus.SUCCESS,
        trigger="command",
        requested_at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        data={"meta": {}, "rows": rows},
        params={"business_line": None, "brand": None, "region": None, "extra": {}},
        **fields,
    )


def cold_row(tag: Tag, score: float = 80.0) -> dict:
    return {
        **tag_brief(tag),
        "score": score,
        "cold": score >= 50,
        "components": {"usage": 1.0},
        "reasons": [{"code": "never_used", "params": {"days": 90}}],
    }


def pair_row(a: Tag, b: Tag, target: Tag) -> dict:
    a, b = sorted((a, b), key=lambda t: t.pk)
    return {
        "a": tag_brief(a),
        "b": tag_brief(b),
        "evidence": [{"kind": "definition", "hash": "x"}],
        "score": 1.0,
        "target": target.pk,
        "fingerprint": {str(a.pk): fingerprint(a), str(b.pk): fingerprint(b)},
    }


@pytest.fixture
def twins(gw):
    """Two published yes/no tags of the own brand with the same definition, owned by the operator."""
    first = publish(bool_tag(gw.own_brand, gw.category, "gao_xiao_fei", name="高消费会员", owner=gw.operator))
    second = publish(
        bool_tag(gw.own_brand, gw.category, "gao_xiao_fei_2", name="高消费会员 ", owner=gw.operator2)
    )
    return first, second


# ---------------------------------------------------------------------------
# Cold findings


def test_cold_findings_become_one_submitted_bulk_request(gw, twins):
    first, second = twins
    report = make_report(ReportKind.COLD, [cold_row(first), cold_row(second, 70)], business_line=gw.own_line)
    findings = cleanup.parse_findings(
        gw.steward, report, ChangeKind.DEPRECATE, [str(first.pk), str(second.pk)]
    )
    preview = cleanup.preview(gw.steward, findings)
    assert [row["tag"] for row in preview] == [first, second]
    assert preview[0]["owners"] == [gw.operator]
    [cr] = cleanup.propose_cleanup(gw.steward, report, findings, reason="90天无人使用")
    assert cr.state == RequestState.SUBMITTED and cr.is_bulk and cr.proposer == gw.steward
    assert sorted(cr.items.values_list("kind", "tag__code")) == sorted(
        [(ChangeKind.DEPRECATE, first.code), (ChangeKind.DEPRECATE, second.code)]
    )
    assert "90天无人使用" in cr.description and f"#{report.pk}" in cr.description
    assert "Not used" in cr.description or "90" in cr.description
    owners = set(Notification.objects.filter(change_request=cr).values_list("recipient__username", flat=True))
    assert {gw.operator.username, gw.operator2.username} <= owners  # the tags' owners
    assert gw.steward2.username in owners  # the reviewer asked to review


def test_findings_of_two_business_lines_make_two_requests(gw, twins):
    other = publish(bool_tag(gw.other_brand, gw.category, "yin_liao"))
    report = make_report(ReportKind.COLD, [cold_row(twins[0]), cold_row(other)])
    findings = cleanup.parse_findings(gw.admin, report, ChangeKind.RETIRE, [twins[0].pk, other.pk])
    created = cleanup.propose_cleanup(gw.admin, report, findings)
    assert len(created) == 2
    assert {cr.business_line_id for cr in created} == {gw.own_line.pk, gw.other_line.pk}
    assert all(cr.items.get().kind == ChangeKind.RETIRE for cr in created)


@pytest.mark.parametrize(
    "case",
    ["changed", "not_in_report", "foreign", "open_request", "wrong_action", "nothing", "garbage", "failed"],
)
def test_bad_cold_findings_create_nothing(gw, twins, case):
    first, _second = twins
    other = publish(bool_tag(gw.other_brand, gw.category, "yin_liao"))
    report = make_report(ReportKind.COLD, [cold_row(first), cold_row(other)])
    values, action, message = [first.pk], ChangeKind.DEPRECATE, ""
    if case == "changed":
        gov.approve(
            gw.steward2,
            gov.propose(
                gw.steward, [gov.ItemSpec("update", first, {"description": "新口径"})], submit_now=True
            ),
            apply_now=True,
        )
        message = "changed since the report"
    elif case == "not_in_report":
        values, message = [twins[1].pk], "not a finding"
    elif case == "foreign":
        values, message = [other.pk], "may not see"
    elif case == "open_request":
        gov.propose(gw.operator, [gov.ItemSpec("update", first, {"description": "新口径"})])
        message = "already in the open change request"
    elif case == "wrong_action":
        action, message = ChangeKind.MERGE, "not a cleanup"
    elif case == "nothing":
        values, message = [], "at least one"
    elif case == "garbage":
        values, message = ["drop table"], "Not a valid finding"
    elif case == "failed":
        Report.objects.filter(pk=report.pk).update(status=ReportStatus.FAILED)
        report.refresh_from_db()
        message = "finished report"
    before = governance_state()
    with pytest.raises(ValidationError) as caught:
        cleanup.parse_findings(gw.steward, report, action, values)
    assert message in " ".join(caught.value.messages)
    assert governance_state() == before


def test_analyst_may_not_propose_cleanup(gw, twins):
    report = make_report(ReportKind.COLD, [cold_row(twins[0])])
    findings = cleanup.parse_findings(gw.analyst, report, ChangeKind.DEPRECATE, [twins[0].pk])
    with pytest.raises(PermissionDenied):
        cleanup.propose_cleanup(gw.analyst, report, findings)
    assert not ChangeRequest.objects.exists()


# ---------------------------------------------------------------------------
# Merge suggestions


def test_merge_suggestion_to_applied_merge(gw, twins):
    first, second = twins
    report = make_report(ReportKind.MERGE, [pair_row(first, second, first)], business_line=gw.own_line)
    findings = cleanup.parse_findings(
        gw.steward, report, ChangeKind.MERGE, [f"{first.pk}:{second.pk}:{first.pk}"]
    )
    assert findings[0].tag == second and findings[0].target == first
    [cr] = cleanup.propose_cleanup(gw.steward, report, findings)
    item = cr.items.get()
    assert (item.kind, item.tag, item.merge_target) == (ChangeKind.MERGE, second, first)
    gov.approve(gw.steward2, cr, "确认重复", apply_now=True)
    assert fresh(cr).state == RequestState.APPLIED
    assert fresh(second).status == TagStatus.RETIRED
    assert TagAlias.objects.get(code=second.code).target == first


def test_merge_suggestion_whose_tag_changed_is_refused(gw, twins):
    first, second = twins
    report = make_report(ReportKind.MERGE, [pair_row(first, second, first)])
    Tag.objects.filter(pk=second.pk).update(definition={**BOOL_DEF, "note": "changed"})
    before = governance_state()
    with pytest.raises(ValidationError, match="changed since the report"):
        cleanup.parse_findings(gw.steward, report, ChangeKind.MERGE, [f"{first.pk}:{second.pk}:{first.pk}"])
    assert governance_state() == before


@pytest.mark.parametrize(
    ("value", "message"),
    [("{a}:{b}:999999", "Keep one of the two"), ("{a}:{c}:{a}", "not a pair"), ("{a}:{b}", "Not a valid")],
)
def test_bad_merge_findings(gw, twins, value, message):
    first, second = twins
    third = publish(draft_tag(gw.own_brand, gw.category, "third"))
    report = make_report(ReportKind.MERGE, [pair_row(first, second, first)])
    with pytest.raises(ValidationError, match=message):
        cleanup.parse_findings(
            gw.steward, report, ChangeKind.MERGE, [value.format(a=first.pk, b=second.pk, c=third.pk)]
        )


def test_a_tag_cannot_be_kept_and_merged_away(gw, twins):
    first, second = twins
    third = publish(bool_tag(gw.own_brand, gw.category, "gao_xiao_fei_3"))
    report = make_report(ReportKind.MERGE, [pair_row(first, second, first), pair_row(second, third, second)])
    with pytest.raises(ValidationError, match="both merged away and kept"):
        cleanup.parse_findings(
            gw.steward,
            report,
            ChangeKind.MERGE,
            [f"{first.pk}:{second.pk}:{first.pk}", f"{second.pk}:{third.pk}:{second.pk}"],
        )


# ---------------------------------------------------------------------------
# Cold twice in a row


def test_tags_cold_twice_are_proposed_for_deprecation_when_enabled(gw, twins, settings):
    first, second = twins
    make_report(ReportKind.COLD, [cold_row(first), cold_row(second)], end=END - dt.timedelta(days=7))
    latest = make_report(ReportKind.COLD, [cold_row(first), cold_row(second, score=20)])
    assert cleanup.cold_twice(latest) == [first.pk]
    [cr] = cleanup.propose_cold_deprecations(latest)
    assert cr.proposer.username == cleanup.SYSTEM_USERNAME
    assert list(cr.items.values_list("kind", "tag")) == [(ChangeKind.DEPRECATE, first.pk)]
    assert cr.state == RequestState.SUBMITTED
    # a steward approves what the service account proposed (four eyes hold)
    gov.approve(gw.steward, cr, "确认下线", apply_now=True)
    assert fresh(first).status == TagStatus.DEPRECATED
    # and nothing is proposed twice
    assert cleanup.propose_cold_deprecations(latest) == []


def test_run_proposes_only_when_the_setting_is_on(gw, twins, settings):
    from tagportal.governance.reports import service

    first, _second = twins
    make_report(ReportKind.COLD, [cold_row(first)], end=END - dt.timedelta(days=7))
    latest = make_report(ReportKind.COLD, [cold_row(first)])
    settings.TAGPORTAL_AUTO_DEPRECATE_COLD = False
    # the builder would recompute the rows: keep these crafted ones
    from unittest import mock

    with mock.patch("tagportal.governance.reports.service.build", return_value=latest.data):
        service.run(latest)
        assert not ChangeRequest.objects.exists()
        settings.TAGPORTAL_AUTO_DEPRECATE_COLD = True
        service.run(latest)
    assert ChangeRequest.objects.get().items.get().tag == first


def test_a_tag_changed_between_reports_is_not_proposed(gw, twins):
    first, _second = twins
    earlier = cold_row(first)
    earlier["version"] = 99
    make_report(ReportKind.COLD, [earlier], end=END - dt.timedelta(days=7))
    latest = make_report(ReportKind.COLD, [cold_row(first)])
    assert cleanup.cold_twice(latest) == []
    assert cleanup.propose_cold_deprecations(latest) == []


# ---------------------------------------------------------------------------
# The API


def test_api_cleanup_preview_and_create(gw, twins):
    first, second = twins
    report = make_report(ReportKind.COLD, [cold_row(first), cold_row(second)], business_line=gw.own_line)
    url = f"/api/governance/reports/{report.pk}/cleanup/"
    client = client_for(gw.steward)
    preview = client.post(
        url, {"action": "deprecate", "findings": [str(first.pk)], "preview": True}, format="json"
    )
    assert preview.status_code == 200, preview.content
    assert preview.json()["findings"][0]["tag"] == first.code
    assert not ChangeRequest.objects.exists()
    made = client.post(
        url, {"action": "deprecate", "findings": [str(first.pk), str(second.pk)]}, format="json"
    )
    assert made.status_code == 201, made.content
    [body] = made.json()
    assert body["state"] == RequestState.SUBMITTED and len(body["items"]) == 2


@pytest.mark.parametrize(
    ("user", "payload", "status"),
    [
        ("steward", {"action": "deprecate", "findings": ["123456"]}, 400),
        ("steward", {"action": "explode", "findings": ["1"]}, 400),
        ("steward", {"action": "deprecate", "findings": []}, 400),
        ("analyst", {"action": "deprecate", "findings": ["{tag}"]}, 403),
    ],
)
def test_api_cleanup_refusals(gw, twins, user, payload, status):
    report = make_report(ReportKind.COLD, [cold_row(twins[0])], business_line=gw.own_line)
    payload = {**payload, "findings": [f.format(tag=twins[0].pk) for f in payload["findings"]]}
    response = client_for(getattr(gw, user)).post(
        f"/api/governance/reports/{report.pk}/cleanup/", payload, format="json"
    )
    assert response.status_code == status, response.content
    assert response.json()
    assert not ChangeRequest.objects.exists()


def test_api_report_rows_are_limited_to_visible_tags(gw, twins):
    other = publish(bool_tag(gw.other_brand, gw.category, "yin_liao"))
    report = make_report(ReportKind.COLD, [cold_row(twins[0]), cold_row(other)])
    own = client_for(gw.operator).get(f"/api/governance/reports/{report.pk}/")
    assert own.status_code == 200
    assert [row["tag"] for row in own.json()["rows"]] == [twins[0].pk]
    everything = client_for(gw.admin).get(f"/api/governance/reports/{report.pk}/")
    assert {row["tag"] for row in everything.json()["rows"]} == {twins[0].pk, other.pk}
    other_line = make_report(ReportKind.COLD, [cold_row(other)], business_line=gw.other_line)
    assert client_for(gw.operator).get(f"/api/governance/reports/{other_line.pk}/").status_code == 404
    listed = client_for(gw.operator).get("/api/governance/reports/").json()
    ids = {r["id"] for r in listed.get("results", listed)}
    assert report.pk in ids and other_line.pk not in ids
