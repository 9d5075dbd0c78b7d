"""The audit export: who changed what, when, and who approved it, for a range of
Beijing days and a business line — JSON and CSV (UTF-8 with BOM, Chinese headers)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from tagportal.catalog.models import Tag
from tagportal.governance import audit
from tagportal.governance import services as gov
from tagportal.governance.choices import AuditAction, ChangeKind
from tagportal.governance.models import AuditEvent
from tagportal.governance.services import ItemSpec

from ..conftest import client_for
from ..formula_guard import HOSTILE, assert_csv_guarded
from .conftest import bool_tag, update_spec

URL = "/api/governance/audit/"
UTC = dt.UTC
#: Where everything is moved unless a test puts it elsewhere: 2026-11-20 10:00 Beijing.
BASE_DAY = "2026-11-20"
BASE_TIME = dt.datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
#: 23:30 in Beijing on the 27th is still the 27th there, though 15:30 UTC.
LATE_27 = dt.datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
#: 00:30 in Beijing on the 28th, though 16:30 UTC on the 27th.
EARLY_28 = dt.datetime(2026, 11, 27, 16, 30, tzinfo=UTC)


@pytest.fixture
def trail(gw):
    """A create (operator → steward), an update (operator2 → steward2) in the own line,
    an update in the other line; every event and history record at BASE_TIME."""
    new = bool_tag(gw.own_brand, gw.category, "fu_gou", name="复购意向")
    create = gov.propose(
        gw.operator, [ItemSpec(ChangeKind.CREATE, new)], title="新建复购意向", submit_now=True
    )
    gov.approve(gw.steward, create, "同意上线", apply_now=True)
    update = gov.propose(
        gw.operator2, [update_spec(gw.own_tag, description="含预约到店")], title="修改说明", submit_now=True
    )
    gov.approve(gw.steward2, update, "可以", apply_now=True)
    other = gov.propose(
        gw.other_operator, [update_spec(gw.other_tag, name="购买次数（新）")], submit_now=True
    )
    gov.approve(gw.other_steward, other, "同意", apply_now=True)
    AuditEvent.objects.update(at=BASE_TIME)
    Tag.history.update(history_date=BASE_TIME)
    gw.new_tag, gw.create, gw.update, gw.other = new, create, update, other
    return gw


def get(user, **params):
    return client_for(user).get(URL, params)


def rows_of(user, **params):
    response = get(user, **params)
    assert response.status_code == 200, response.content
    return response.json()["rows"]


def governance_rows(rows):
    return [r for r in rows if r["change_request"]]


def test_json_lists_who_proposed_and_who_approved(trail):
    response = get(trail.steward, start=BASE_DAY, end=BASE_DAY)
    assert response.status_code == 200
    body = response.json()
    assert body["start"] == BASE_DAY and body["end"] == BASE_DAY
    assert body["count"] == len(body["rows"])
    rows = governance_rows(body["rows"])
    create = [r for r in rows if r["change_request"] == f"#{trail.create.pk} 新建复购意向"]
    assert [r["event"] for r in create] == ["Proposed", "Submitted for review", "Approved", "Applied"]
    assert all(r["proposer"] == "op" and r["approver"] == "st" for r in create)
    assert [r["actor"] for r in create] == ["op", "op", "st", "st"]
    assert all(r["business_line"] == "医美" and r["time"] == "2026-11-20 10:00:00" for r in create)
    approved = create[2]
    assert approved["reason"] == "同意上线"
    applied = create[3]
    assert applied["tag_code"] == trail.new_tag.code and applied["tag_name"] == "复购意向"
    assert applied["brand"] == "瑞颜" and applied["version"] == 1
    assert "definition" in applied["fields"].split(", ")

    update = [r for r in rows if r["change_request"] == f"#{trail.update.pk} 修改说明"]
    assert [r["event"] for r in update] == ["Proposed", "Submitted for review", "Approved", "Applied"]
    assert all(r["proposer"] == "op2" and r["approver"] == "st2" for r in update)
    assert update[3]["tag_code"] == trail.own_tag.code
    assert update[3]["version"] == 2 and update[3]["fields"] == "description"
    # the recorded edits of the tags are there too
    edits = [r for r in body["rows"] if not r["change_request"]]
    assert {r["tag_code"] for r in edits} >= {trail.new_tag.code, trail.own_tag.code}
    assert any(r["event"] == "Edited" and "description" in r["fields"] for r in edits)


def test_beijing_days(trail):
    approved = AuditEvent.objects.get(change_request=trail.create, action=AuditAction.APPROVED)
    applied = AuditEvent.objects.get(change_request=trail.create, action=AuditAction.APPLIED)
    AuditEvent.objects.filter(pk=approved.pk).update(at=LATE_27)
    AuditEvent.objects.filter(pk=applied.pk).update(at=EARLY_28)

    on_27 = rows_of(trail.steward, start="2026-11-27", end="2026-11-27")
    assert [(r["event"], r["time"]) for r in on_27] == [("Approved", "2026-11-27 23:30:00")]
    on_28 = rows_of(trail.steward, start="2026-11-28", end="2026-11-28")
    assert [(r["event"], r["time"]) for r in on_28] == [("Applied", "2026-11-28 00:30:00")]
    both = rows_of(trail.steward, start="2026-11-27", end="2026-11-28")
    assert [r["event"] for r in both] == ["Approved", "Applied"]
    assert rows_of(trail.steward, start="2026-11-26", end="2026-11-26") == []
    assert len(rows_of(trail.steward, start="2026-11-01", end="2026-11-30")) > 2


def test_rows_are_oldest_first(trail):
    for offset, event in enumerate(AuditEvent.objects.order_by("-pk")):
        AuditEvent.objects.filter(pk=event.pk).update(at=BASE_TIME + dt.timedelta(minutes=offset))
    rows = governance_rows(rows_of(trail.admin, start=BASE_DAY, end=BASE_DAY))
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


def test_business_line_filter_and_scope(trail):
    steward_rows = rows_of(trail.steward, start=BASE_DAY, end=BASE_DAY)
    assert steward_rows and {r["business_line"] for r in steward_rows} == {"医美"}
    assert trail.other_tag.code not in {r["tag_code"] for r in steward_rows}
    assert rows_of(trail.steward, start=BASE_DAY, end=BASE_DAY, business_line="yimei") == steward_rows

    other_rows = rows_of(trail.other_steward, start=BASE_DAY, end=BASE_DAY)
    assert other_rows and {r["business_line"] for r in other_rows} == {"食品饮料"}

    all_rows = rows_of(trail.admin, start=BASE_DAY, end=BASE_DAY)
    assert {r["business_line"] for r in all_rows} == {"医美", "食品饮料"}
    assert len(all_rows) == len(steward_rows) + len(other_rows)
    admin_other = rows_of(trail.admin, start=BASE_DAY, end=BASE_DAY, business_line="shipin")
    assert admin_other == other_rows

    # a steward cannot ask for another line's events
    response = get(trail.steward, start=BASE_DAY, end=BASE_DAY, business_line="shipin")
    assert response.status_code == 400
    assert "business_line" in response.json()


def test_certification_is_in_the_audit(trail):
    gov.certify(trail.steward, trail.own_tag, note="季度复核")
    AuditEvent.objects.filter(action=AuditAction.CERTIFIED).update(at=LATE_27)
    rows = rows_of(trail.steward, start="2026-11-27", end="2026-11-27")
    assert [(r["event"], r["actor"], r["tag_code"], r["reason"]) for r in rows] == [
        ("Re-certified", "st", trail.own_tag.code, "季度复核")
    ]


def test_csv_export(trail):
    response = get(trail.steward, start=BASE_DAY, end=BASE_DAY, format="csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="tagportal-audit-20261120-20261120.csv"'
    content = response.content
    assert content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert table[0] == [
        "时间（北京时间）", "业务线", "品牌", "标签编码", "标签名称", "事件", "操作人", "变更单",
        "提议人", "审批人", "变更字段", "版本", "原因",
    ]  # fmt: skip
    json_rows = rows_of(trail.steward, start=BASE_DAY, end=BASE_DAY)
    assert len(table) == 1 + len(json_rows)
    applied = next(r for r in table[1:] if r[5] == "Applied" and r[3] == trail.new_tag.code)
    assert applied[0] == "2026-11-20 10:00:00"
    assert applied[1] == "医美" and applied[6] == "st" and applied[8] == "op" and applied[9] == "st"
    assert applied[11] == "1"
    assert "食品饮料" not in content.decode("utf-8-sig")


def test_csv_in_chinese(trail):
    response = client_for(trail.steward).get(
        URL, {"start": BASE_DAY, "end": BASE_DAY, "format": "csv"}, HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert response.status_code == 200
    text = response.content.decode("utf-8-sig")
    assert "时间（北京时间）" in text


def test_both_audit_downloads_guard_formulas(trail, client):
    """A tag name and reasons a user typed come out as text in the API's CSV and the page's."""
    name, other_name, approval_reason, edit_reason = HOSTILE
    Tag.objects.filter(pk=trail.new_tag.pk).update(name=name)
    Tag.objects.filter(pk=trail.own_tag.pk).update(name=other_name)
    AuditEvent.objects.filter(change_request=trail.create).update(detail={"reason": approval_reason})
    Tag.history.filter(id=trail.own_tag.pk).update(history_change_reason=edit_reason)
    params = {"start": BASE_DAY, "end": BASE_DAY}
    assert_csv_guarded(get(trail.steward, format="csv", **params).content)
    client.force_login(trail.steward)
    assert_csv_guarded(client.get("/review/audit/csv/", params).content)


def test_audit_rows_service_matches_api(trail):
    rows = audit.audit_rows(trail.steward, dt.date(2026, 11, 20), dt.date(2026, 11, 20))
    assert rows == rows_of(trail.steward, start=BASE_DAY, end=BASE_DAY)
    assert audit.to_csv(rows).decode("utf-8").startswith("\ufeff时间（北京时间）,")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"start": BASE_DAY},
        {"end": BASE_DAY},
        {"start": "2026-13-01", "end": BASE_DAY},
        {"start": "20.11.2026", "end": BASE_DAY},
        {"start": "2026-11-21", "end": "2026-11-20"},
        {"start": BASE_DAY, "end": BASE_DAY, "business_line": "nope"},
        {"start": "yesterday", "end": "today", "format": "csv"},
    ],
)
def test_bad_parameters_are_400(trail, params):
    response = get(trail.steward, **params)
    assert response.status_code == 400
    # the problem is named in JSON, also when a CSV was asked for
    assert response["Content-Type"] == "application/json"
    assert response.json()


def test_a_refused_csv_request_by_accept_header_names_its_problem(trail):
    response = client_for(trail.steward).get(URL, {"start": "yesterday"}, HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert "start" in response.json()


@pytest.mark.parametrize("role", ["operator", "analyst", "nobody"])
def test_only_stewards_and_admins_export(trail, role):
    assert not getattr(trail, role).has_perm("governance.view_auditevent")
    assert get(getattr(trail, role), start=BASE_DAY, end=BASE_DAY).status_code == 403
    assert get(getattr(trail, role), start=BASE_DAY, end=BASE_DAY, format="csv").status_code == 403


def test_anonymous_export_refused(trail):
    from rest_framework.test import APIClient

    response = APIClient().get(URL, {"start": BASE_DAY, "end": BASE_DAY})
    assert response.status_code in (401, 403)


# ---------------------------------------------------------------------------
# The page: 50 rows a page, filters by event kind, actor, brand


PAGE = "/review/audit/"


def page_of(client, user, **params):
    client.force_login(user)
    response = client.get(PAGE, {"start": BASE_DAY, "end": BASE_DAY, **params})
    assert response.status_code == 200, response.content
    return response


def column(response, key: str) -> set:
    """The values of one column of the audit table on the page."""
    return {row[key] for row in response.context["rows"]}


def test_page_shows_fifty_rows_a_page_and_the_filters_survive_paging(client, trail):
    template = AuditEvent.objects.filter(business_line=trail.own_brand.business_line).first()
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                at=BASE_TIME + dt.timedelta(seconds=n),
                actor=trail.steward,
                action=AuditAction.COMMENTED,
                business_line=template.business_line,
                brand=trail.own_brand,
            )
            for n in range(70)
        ]
    )
    AuditEvent.objects.update(at=BASE_TIME)
    everything = len(rows_of(trail.steward, start=BASE_DAY, end=BASE_DAY))
    first = page_of(client, trail.steward)
    assert first.context["total"] == everything > 70
    assert len(first.context["rows"]) == 50
    html = first.content.decode()
    assert "page=2" in html and f"start={BASE_DAY}" in html
    pages = first.context["page"].paginator.num_pages
    last = page_of(client, trail.steward, page=pages)
    assert len(last.context["rows"]) == everything - 50 * (pages - 1)
    commented = page_of(client, trail.steward, kind="commented", page=2)
    assert commented.context["total"] == 70 and len(commented.context["rows"]) == 20
    assert "kind=commented" in commented.content.decode()


def test_page_filters_by_event_kind_actor_and_brand(client, trail):
    approved = page_of(client, trail.admin, kind="approved")
    events = column(approved, "event")
    assert events == {"Approved"} and approved.context["total"] == 3
    created = page_of(client, trail.admin, kind="created")
    assert column(created, "event") == {"Created"}
    assert trail.new_tag.code in column(created, "tag_code")

    by_op2 = page_of(client, trail.admin, actor="OP2")
    assert by_op2.context["total"] > 0 and column(by_op2, "actor") == {"op2"}

    brand = trail.other_tag.brand
    other_brand = page_of(client, trail.admin, brand=brand.code)
    assert other_brand.context["total"] > 0
    assert column(other_brand, "brand") == {brand.name}
    # a steward cannot pick another line's brand
    client.force_login(trail.steward)
    refused = client.get(PAGE, {"start": BASE_DAY, "end": BASE_DAY, "brand": brand.code})
    assert refused.status_code == 400 and refused.context["form"].errors.get("brand")
    # the CSV keeps the filters
    csv_rows = list(
        csv.reader(
            io.StringIO(
                client.get("/review/audit/csv/", {"start": BASE_DAY, "end": BASE_DAY, "kind": "approved"})
                .content.decode("utf-8")
                .lstrip("\ufeff")
            )
        )
    )
    assert len(csv_rows) == 1 + 2 and {row[5] for row in csv_rows[1:]} == {"Approved"}


def test_page_without_a_period_uses_the_last_thirty_days_on_every_page(client, trail):
    client.force_login(trail.steward)
    response = client.get(PAGE, {"page": "2"})
    assert response.status_code == 200 and response.context["form"].is_valid()
