"""The governance services per role: who proposes, who reviews (four eyes, the steward
of the business line), who applies; diffs, stale versions, dependents, notifications,
comments and re-certification."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tagportal.catalog import services as catalog
from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag, TagVersion
from tagportal.governance import services as gov
from tagportal.governance.choices import AuditAction, ChangeKind, RequestState
from tagportal.governance.models import AuditEvent, ChangeRequest, Comment
from tagportal.governance.services import (
    DependentsNeedConfirmation,
    InvalidTransition,
    ItemSpec,
    StaleChangeRequest,
)
from tagportal.notifications import services as notifications
from tagportal.notifications.models import Notification

from ..factories import CategoryFactory, RegionFactory
from .conftest import (
    bool_tag,
    composite_tag,
    draft_tag,
    fresh,
    governance_state,
    metric_def,
    publish,
    request_in_state,
    update_spec,
)

S = RequestState

# ---------------------------------------------------------------------------
# Who may propose

PROPOSERS = {
    "operator": True,
    "steward": True,
    "admin": True,
    "analyst": False,
    "nobody": False,
    "other_steward": False,  # a steward, but not of the tag's business line
    "other_operator": False,
}


@pytest.mark.parametrize("role", PROPOSERS)
def test_who_may_propose(gw, role):
    user = getattr(gw, role)
    before = governance_state()
    if PROPOSERS[role]:
        cr = gov.propose(user, [update_spec(gw.own_tag)], submit_now=True)
        cr = fresh(cr)
        assert cr.state == S.SUBMITTED
        assert cr.proposer == user
        assert cr.business_line == gw.own_line and cr.brand == gw.own_brand
    else:
        with pytest.raises(PermissionDenied):
            gov.propose(user, [update_spec(gw.own_tag)], submit_now=True)
        assert governance_state() == before


@pytest.mark.parametrize("role", ["analyst", "nobody", "other_operator"])
def test_who_may_not_propose_a_new_tag(gw, role):
    tag = bool_tag(gw.own_brand, gw.category, "xin_biao_qian")
    with pytest.raises(PermissionDenied):
        gov.propose(getattr(gw, role), [ItemSpec(ChangeKind.CREATE, tag)], submit_now=True)
    assert fresh(tag).status == TagStatus.DRAFT
    assert not ChangeRequest.objects.exists()


# ---------------------------------------------------------------------------
# Who may review: a steward of the line or an admin, never the proposer

REVIEWERS = {
    "steward": True,
    "steward2": True,
    "admin": True,
    "operator": False,  # the proposer
    "operator2": False,
    "analyst": False,
    "nobody": False,
    "other_steward": False,
    "other_operator": False,
}
DECISIONS = {
    "approve": (lambda user, cr: gov.approve(user, cr, "同意"), S.APPROVED),
    "reject": (lambda user, cr: gov.reject(user, cr, "重复"), S.REJECTED),
    "request_changes": (lambda user, cr: gov.request_changes(user, cr, "请补充"), S.CHANGES_REQUESTED),
}


@pytest.mark.parametrize("role", REVIEWERS)
def test_who_may_review(gw, role):
    user = getattr(gw, role)
    for decision, (do, expected) in DECISIONS.items():
        cr = request_in_state(gw, S.SUBMITTED, proposer=gw.operator)
        if REVIEWERS[role]:
            do(user, cr)
            cr = fresh(cr)
            assert cr.state == expected, decision
            assert cr.reviewer == user
            assert cr.decided_at is not None
        else:
            before = governance_state()
            with pytest.raises(PermissionDenied):
                do(user, cr)
            cr = fresh(cr)
            assert cr.state == S.SUBMITTED and cr.reviewer is None, decision
            assert governance_state() == before


@pytest.mark.parametrize("proposer", ["steward", "admin", "steward2"])
def test_four_eyes_nobody_approves_their_own(gw, proposer):
    user = getattr(gw, proposer)
    cr = request_in_state(gw, S.SUBMITTED, proposer=user)
    for decide in DECISIONS.values():
        with pytest.raises(PermissionDenied, match="Four eyes"):
            decide[0](user, cr)
    assert fresh(cr).state == S.SUBMITTED
    assert cr not in gov.review_queue(user)
    # someone else entitled does it
    other = gw.steward2 if proposer == "steward" else gw.steward
    assert cr in gov.review_queue(other)
    gov.approve(other, cr, "同意", apply_now=True)
    assert fresh(cr).state == S.APPLIED


def test_four_eyes_enforced_by_the_database(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        ChangeRequest.objects.filter(pk=cr.pk).update(reviewer=cr.proposer)


def test_admin_is_a_reviewer_of_every_line(gw):
    cr = gov.propose(gw.other_operator, [update_spec(gw.other_tag)], submit_now=True)
    assert cr in gov.review_queue(gw.admin)
    assert cr not in gov.review_queue(gw.steward)
    with pytest.raises(PermissionDenied):
        gov.approve(gw.steward, cr, "同意")
    gov.approve(gw.other_steward, cr, "同意")
    assert fresh(cr).state == S.APPROVED


@pytest.mark.parametrize("decision", ["reject", "request_changes"])
def test_sending_back_needs_a_reason(gw, decision):
    cr = request_in_state(gw, S.SUBMITTED)
    with pytest.raises(ValidationError) as exc:
        getattr(gov, decision)(gw.steward, cr, "   ")
    assert "reason" in exc.value.message_dict
    assert fresh(cr).state == S.SUBMITTED


def test_decision_reason_and_comment_recorded(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    gov.reject(gw.steward, cr, "与现有标签重复")
    cr = fresh(cr)
    assert cr.decision_reason == "与现有标签重复"
    assert Comment.objects.get(change_request=cr).text == "与现有标签重复"
    event = AuditEvent.objects.get(change_request=cr, action=AuditAction.REJECTED)
    assert event.actor == gw.steward and event.detail["reason"] == "与现有标签重复"


# ---------------------------------------------------------------------------
# Who may submit, withdraw, apply


@pytest.mark.parametrize("role", ["steward", "admin", "operator2", "analyst"])
def test_only_the_proposer_submits_and_withdraws(gw, role):
    cr = request_in_state(gw, S.DRAFT)
    user = getattr(gw, role)
    with pytest.raises(PermissionDenied):
        gov.submit(user, cr)
    with pytest.raises(PermissionDenied):
        gov.withdraw(user, cr)
    assert fresh(cr).state == S.DRAFT


APPLIERS = {
    "operator": True,  # the proposer
    "steward": True,  # the reviewer
    "steward2": True,  # another steward of the line
    "admin": True,
    "operator2": False,
    "analyst": False,
    "nobody": False,
    "other_steward": False,
}


@pytest.mark.parametrize("role", APPLIERS)
def test_who_may_apply(gw, role):
    cr = request_in_state(gw, S.APPROVED)
    user = getattr(gw, role)
    if APPLIERS[role]:
        gov.apply(user, cr)
        assert fresh(cr).state == S.APPLIED
        assert fresh(gw.own_tag).published_version == 2
    else:
        with pytest.raises(PermissionDenied):
            gov.apply(user, cr)
        assert fresh(cr).state == S.APPROVED
        assert fresh(gw.own_tag).published_version == 1


def test_proposer_may_not_apply_without_approval(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    with pytest.raises(InvalidTransition):
        gov.apply(gw.operator, cr)
    assert fresh(gw.own_tag).published_version == 1


# ---------------------------------------------------------------------------
# Proposing: what is checked


def test_propose_returns_the_request_in_its_state(gw):
    cr = gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True)
    assert cr.state == S.SUBMITTED
    assert cr.submitted_at is not None


def test_propose_validation(gw):
    before = governance_state()
    cases = [
        ([], "items"),
        ([update_spec(gw.own_tag), update_spec(gw.own_tag)], "items[1].tag"),
        ([ItemSpec("rename", gw.own_tag)], "kind"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {})], "changes"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"status": "retired"})], "changes"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"published_version": 9})], "changes"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"owner": "ghost"})], "changes.owner"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"regions": ["atlantis"]})], "changes.regions"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"category": 999999})], "changes.category"),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"value_type": "enum", "values": []})], "changes.values"),
        (
            [ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"definition": {"type": "nonsense"}})],
            "changes.definition",
        ),
        ([ItemSpec(ChangeKind.UPDATE, gw.own_tag, {"code": "Bad-Code"})], "changes.code"),
        ([ItemSpec(ChangeKind.DEPRECATE, gw.own_tag, {"name": "x"})], "changes"),
    ]
    for specs, key in cases:
        with pytest.raises(ValidationError) as exc:
            gov.propose(gw.admin, specs)
        assert key in exc.value.message_dict, (specs, exc.value.message_dict)
    assert governance_state() == before


def test_one_request_one_business_line(gw):
    with pytest.raises(ValidationError) as exc:
        gov.propose(gw.admin, [update_spec(gw.own_tag), update_spec(gw.other_tag)])
    assert "items" in exc.value.message_dict
    assert not ChangeRequest.objects.exists()


def test_multi_item_errors_name_the_item(gw):
    second = publish(draft_tag(gw.own_brand, gw.category, "di_er"))
    with pytest.raises(ValidationError) as exc:
        gov.propose(
            gw.operator, [update_spec(gw.own_tag), ItemSpec(ChangeKind.UPDATE, second, {"status": "x"})]
        )
    assert any(key.startswith("items[1].") for key in exc.value.message_dict)
    assert not ChangeRequest.objects.exists()


def test_replace_items_only_by_proposer_and_only_in_draft(gw):
    cr = request_in_state(gw, S.DRAFT)
    with pytest.raises(PermissionDenied):
        gov.replace_items(gw.steward, cr, [update_spec(gw.own_tag, name="别人改")])
    with pytest.raises(PermissionDenied):
        gov.replace_items(gw.admin, cr, [update_spec(gw.own_tag, name="管理员改")])
    gov.replace_items(gw.operator, cr, [update_spec(gw.own_tag, name="提议人改")])
    assert fresh(cr).items.get().changes == {"name": "提议人改"}
    gov.submit(gw.operator, cr)
    with pytest.raises(InvalidTransition):
        gov.replace_items(gw.operator, cr, [update_spec(gw.own_tag, name="提交后改")])
    assert fresh(cr).items.get().changes == {"name": "提议人改"}


def test_replace_items_stays_in_the_business_line(gw):
    cr = request_in_state(gw, S.DRAFT, proposer=gw.admin)
    with pytest.raises(ValidationError) as exc:
        gov.replace_items(gw.admin, cr, [update_spec(gw.other_tag)])
    assert "items" in exc.value.message_dict
    assert fresh(cr).items.get().tag == gw.own_tag


# ---------------------------------------------------------------------------
# Update: a new version with its diff


def test_update_diff_and_new_version(gw):
    region = RegionFactory(code="cn", name="中国")
    cr = gov.propose(
        gw.operator,
        [
            update_spec(
                gw.own_tag, name="到店次数（30天）", definition=metric_def(30), owner="st", regions=["cn"]
            )
        ],
        submit_now=True,
    )
    item = cr.items.get()
    assert item.base_version == 1
    rows = {row["field"]: row for row in item.diff}
    assert set(rows) == {"name", "definition", "owner", "regions"}
    assert rows["name"]["old"] == "到店次数" and rows["name"]["new"] == "到店次数（30天）"
    assert rows["name"]["label"] == "Chinese name"
    assert rows["owner"]["old"] == "—" and rows["owner"]["new"] == "st"
    lines = rows["definition"]["lines"]
    assert {"op": "-", "text": '      "last_days": 90'} in lines
    assert {"op": "+", "text": '      "last_days": 30'} in lines
    assert {"op": " ", "text": '  "type": "metric"'} in lines
    assert [line for line in lines if line["op"] in "-+"] == [
        {"op": "-", "text": '      "last_days": 90'},
        {"op": "+", "text": '      "last_days": 30'},
    ]
    # the tag is untouched until the request is applied
    assert fresh(gw.own_tag).name == "到店次数"

    gov.approve(gw.steward, cr, "同意", apply_now=True)
    tag = fresh(gw.own_tag)
    assert tag.status == TagStatus.PUBLISHED
    assert tag.published_version == 2
    assert tag.name == "到店次数（30天）"
    assert tag.definition == metric_def(30)
    assert tag.owner == gw.steward
    assert list(tag.regions.all()) == [region]
    v2 = TagVersion.objects.get(tag=tag, version=2)
    assert fresh(cr).items.get().produced_version == v2
    assert v2.snapshot["name"] == "到店次数（30天）" and v2.snapshot["regions"] == ["cn"]
    assert TagVersion.objects.get(tag=tag, version=1).snapshot["name"] == "到店次数"
    applied = AuditEvent.objects.get(change_request=cr, action=AuditAction.APPLIED)
    assert applied.tag == tag and applied.detail["version"] == 2
    assert set(applied.detail["fields"]) == {"name", "definition", "owner", "regions"}


def test_update_category_diff_shows_paths(gw):
    parent = CategoryFactory(code="behavior", name="行为属性")
    child = CategoryFactory(code="visit", name="到店", parent=parent)
    cr = gov.propose(gw.operator, [update_spec(gw.own_tag, category=child.pk)])
    row = next(r for r in cr.items.get().diff if r["field"] == "category")
    assert row["old"] == "到店行为" and row["new"] == "行为属性 › 到店"
    gov.submit(gw.operator, cr)
    gov.approve(gw.steward, cr, "同意", apply_now=True)
    assert fresh(gw.own_tag).category == child


# ---------------------------------------------------------------------------
# Stale edits


def test_stale_request_is_refused_and_nothing_applied(gw):
    first = gov.propose(gw.operator, [update_spec(gw.own_tag, name="第一")], submit_now=True)
    second = gov.propose(
        gw.operator2, [update_spec(gw.own_tag, name="第二", description="第二")], submit_now=True
    )
    gov.approve(gw.steward, first, "同意")
    gov.approve(gw.steward, second, "同意")
    gov.apply(gw.steward, first)
    assert fresh(gw.own_tag).published_version == 2
    before = governance_state()
    with pytest.raises(StaleChangeRequest) as exc:
        gov.apply(gw.steward, second)
    assert exc.value.extra["base_version"] == 1
    assert exc.value.extra["current_version"] == 2
    assert exc.value.extra["tag"] == gw.own_tag.code
    assert "version 1" in str(exc.value) and "version 2" in str(exc.value)
    tag = fresh(gw.own_tag)
    assert tag.name == "第一" and tag.description != "第二"
    assert tag.published_version == 2
    assert fresh(second).state == S.APPROVED and fresh(second).applied_at is None
    assert fresh(second).items.get().produced_version is None
    assert governance_state() == before


def test_stale_multi_item_request_is_all_or_nothing(gw):
    fresh_tag = publish(draft_tag(gw.own_brand, gw.category, "xin_xian"))
    cr = gov.propose(
        gw.operator,
        [update_spec(fresh_tag, name="不应生效"), update_spec(gw.own_tag, name="也不应生效")],
        submit_now=True,
    )
    gov.approve(gw.steward, cr, "同意")
    other = gov.propose(gw.operator2, [update_spec(gw.own_tag, name="先发布")], submit_now=True)
    gov.approve(gw.steward, other, "同意", apply_now=True)
    with pytest.raises(StaleChangeRequest):
        gov.apply(gw.steward, cr)
    assert fresh(fresh_tag).name != "不应生效"
    assert fresh(fresh_tag).published_version == 1
    assert fresh(gw.own_tag).name == "先发布"
    assert fresh(cr).state == S.APPROVED


def test_stale_on_approve_and_apply_now_applies_nothing(gw):
    stale = gov.propose(gw.operator, [update_spec(gw.own_tag, name="旧版本上的修改")], submit_now=True)
    newer = gov.propose(gw.operator2, [update_spec(gw.own_tag, name="新版本")], submit_now=True)
    gov.approve(gw.steward, newer, "同意", apply_now=True)
    with pytest.raises(StaleChangeRequest):
        gov.approve(gw.steward, stale, "同意", apply_now=True)
    assert fresh(gw.own_tag).name == "新版本"
    assert fresh(stale).state != S.APPLIED


def test_stale_draft_cannot_be_submitted(gw):
    draft = gov.propose(gw.operator, [update_spec(gw.own_tag, name="草稿")])
    newer = gov.propose(gw.operator2, [update_spec(gw.own_tag, name="新版本")], submit_now=True)
    gov.approve(gw.steward, newer, "同意", apply_now=True)
    with pytest.raises(StaleChangeRequest) as exc:
        gov.submit(gw.operator, draft)
    assert exc.value.extra["base_version"] == 1 and exc.value.extra["current_version"] == 2
    assert fresh(draft).state == S.DRAFT
    # re-proposed on the current version it goes through
    gov.replace_items(gw.operator, draft, [update_spec(fresh(gw.own_tag), name="草稿")])
    gov.submit(gw.operator, draft)
    gov.approve(gw.steward, draft, "同意", apply_now=True)
    assert fresh(gw.own_tag).published_version == 3


def test_stale_status_change(gw):
    deprecate = gov.propose(gw.operator, [ItemSpec(ChangeKind.DEPRECATE, gw.own_tag)], submit_now=True)
    gov.approve(gw.steward, deprecate, "同意")
    update = gov.propose(gw.operator2, [update_spec(gw.own_tag)], submit_now=True)
    gov.approve(gw.steward, update, "同意", apply_now=True)
    with pytest.raises(StaleChangeRequest):
        gov.apply(gw.steward, deprecate)
    assert fresh(gw.own_tag).status == TagStatus.PUBLISHED


# ---------------------------------------------------------------------------
# Dependents need an explicit confirmation


@pytest.fixture
def chain(gw):
    """base ← reader ← reader_of_reader (composites reading by code), all published."""
    base = publish(bool_tag(gw.own_brand, gw.category, "gao_yi_xiang"))
    reader = publish(composite_tag(gw.own_brand, gw.category, "zu_he", base.code))
    second = publish(composite_tag(gw.own_brand, gw.category, "zu_he_er", reader.code))
    return base, reader, second


@pytest.mark.parametrize("kind", [ChangeKind.RETIRE, ChangeKind.DEPRECATE, ChangeKind.MERGE])
def test_removing_a_tag_others_read_needs_confirmation(gw, chain, kind):
    base, reader, second = chain
    target = publish(bool_tag(gw.own_brand, gw.category, "ti_dai")) if kind == ChangeKind.MERGE else None
    spec = ItemSpec(kind, base, merge_target=target)
    before = governance_state()
    with pytest.raises(DependentsNeedConfirmation) as exc:
        gov.propose(gw.operator, [spec], submit_now=True)
    codes = [d["code"] for d in exc.value.extra["dependents"][base.code]]
    assert codes == [reader.code, second.code]
    assert governance_state() == before  # nothing half-saved
    assert fresh(base).status == TagStatus.PUBLISHED

    cr = gov.propose(gw.operator, [ItemSpec(kind, base, merge_target=target)])
    assert [d["code"] for d in cr.items.get().dependents] == [reader.code, second.code]
    with pytest.raises(DependentsNeedConfirmation):
        gov.submit(gw.operator, cr)
    assert fresh(cr).state == S.DRAFT
    gov.submit(gw.operator, cr, confirm_dependents=True)
    cr = fresh(cr)
    assert cr.state == S.SUBMITTED and cr.confirm_dependents
    gov.approve(gw.steward, cr, "同意", apply_now=True)
    assert fresh(base).status == (TagStatus.DEPRECATED if kind == ChangeKind.DEPRECATE else TagStatus.RETIRED)


def test_confirmation_up_front(gw, chain):
    base, _reader, _second = chain
    cr = gov.propose(
        gw.operator, [ItemSpec(ChangeKind.RETIRE, base)], submit_now=True, confirm_dependents=True
    )
    assert fresh(cr).state == S.SUBMITTED


def test_updates_and_independent_tags_need_no_confirmation(gw, chain):
    base, _reader, second = chain
    gov.propose(gw.operator, [update_spec(base, description="口径说明")], submit_now=True)
    cr = gov.propose(gw.operator, [ItemSpec(ChangeKind.RETIRE, second)], submit_now=True)  # read by no one
    assert fresh(cr).state == S.SUBMITTED
    assert cr.items.get().dependents == []


def test_retired_dependents_do_not_count(gw):
    base = publish(bool_tag(gw.own_brand, gw.category, "gao_yi_xiang"))
    reader = publish(composite_tag(gw.own_brand, gw.category, "zu_he", base.code))
    catalog.set_status(reader, TagStatus.RETIRED)
    cr = gov.propose(gw.operator, [ItemSpec(ChangeKind.RETIRE, base)], submit_now=True)
    assert fresh(cr).state == S.SUBMITTED


# ---------------------------------------------------------------------------
# Notifications: inbox and e-mail


def _inbox(user):
    return list(Notification.objects.filter(recipient=user).values_list("subject", flat=True))


def test_notifications_on_submit_go_to_the_stewards_of_the_line(gw, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        cr = gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True, title="修改到店次数说明")
    assert _inbox(gw.steward) == ["Review requested: 修改到店次数说明"]
    assert _inbox(gw.steward2) == ["Review requested: 修改到店次数说明"]
    for user in (gw.operator, gw.other_steward, gw.admin, gw.analyst):
        assert _inbox(user) == []
    note = Notification.objects.filter(recipient=gw.steward).get()
    assert note.topic == cr and note.read_at is None and note.url
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["st2@tagportal.test", "st@tagportal.test"]
    assert mail.outbox[0].subject == "Review requested: 修改到店次数说明"
    assert note.url in mail.outbox[0].body


def test_a_steward_proposing_is_not_asked_to_review(gw, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        gov.propose(gw.steward, [update_spec(gw.own_tag)], submit_now=True)
    assert _inbox(gw.steward) == []
    assert len(_inbox(gw.steward2)) == 1
    assert [m.to for m in mail.outbox] == [["st2@tagportal.test"]]


def test_notifications_on_decisions_go_to_the_proposer(gw, django_capture_on_commit_callbacks):
    cr = gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True, title="改说明")
    Notification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        gov.request_changes(gw.steward, cr, "请写清口径")
    assert _inbox(gw.operator) == ["Changes requested: 改说明"]
    assert "请写清口径" in Notification.objects.get(recipient=gw.operator).body
    assert [m.to for m in mail.outbox] == [["op@tagportal.test"]]

    gov.submit(gw.operator, cr)
    mail.outbox.clear()
    Notification.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        gov.approve(gw.steward, cr, "同意", apply_now=True)
    assert sorted(_inbox(gw.operator)) == ["Applied: 改说明", "Approved: 改说明"]
    assert _inbox(gw.steward) == []  # the reviewer applied it and is not told about it
    assert {tuple(m.to) for m in mail.outbox} == {("op@tagportal.test",)}
    assert len(mail.outbox) == 2


def test_rejection_notifies_proposer(gw, django_capture_on_commit_callbacks):
    cr = gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True, title="改说明")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        gov.reject(gw.steward, cr, "不需要")
    assert "Rejected: 改说明" in _inbox(gw.operator)
    assert [m.to for m in mail.outbox] == [["op@tagportal.test"]]
    assert "不需要" in mail.outbox[0].body


def test_no_email_without_address_but_inbox_still(gw, django_capture_on_commit_callbacks):
    type(gw.steward).objects.filter(pk__in=[gw.steward.pk, gw.steward2.pk]).update(email="")
    with django_capture_on_commit_callbacks(execute=True):
        gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True)
    assert len(_inbox(gw.steward)) == 1
    assert mail.outbox == []


def test_unread_count_and_mark_read(gw):
    gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True)
    gov.propose(gw.operator, [update_spec(gw.own_tag, name="二")], submit_now=True)
    assert notifications.unread_count(gw.steward) == 2
    first = Notification.objects.filter(recipient=gw.steward).first()
    assert notifications.mark_read(gw.steward, [first.pk]) == 1
    assert notifications.unread_count(gw.steward) == 1
    assert notifications.mark_read(gw.operator, None) == 0  # nobody else's inbox is touched
    assert notifications.unread_count(gw.steward) == 1
    assert notifications.mark_read(gw.steward) == 1
    assert notifications.unread_count(gw.steward) == 0


# ---------------------------------------------------------------------------
# Comments


def test_comments(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    Notification.objects.all().delete()
    note = gov.comment(gw.analyst, cr, "  这个口径和 BI 报表一致吗？ ")
    assert note.text == "这个口径和 BI 报表一致吗？" and note.author == gw.analyst
    recipients = set(Notification.objects.values_list("recipient__username", flat=True))
    assert recipients == {"op", "st", "st2"}
    assert AuditEvent.objects.filter(
        change_request=cr, action=AuditAction.COMMENTED, actor=gw.analyst
    ).exists()
    with pytest.raises(ValidationError):
        gov.comment(gw.steward, cr, "  ")
    with pytest.raises(PermissionDenied):
        gov.comment(gw.other_steward, cr, "看不到的请求")
    assert cr.comments.count() == 1


# ---------------------------------------------------------------------------
# Re-certification

NOW = dt.datetime(2026, 6, 1, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def periods(gw, settings):
    """A category certified every 30 days, a sub-category inheriting it, and the
    default period (180 days) for the world category."""
    settings.TAGPORTAL_RECERTIFICATION_DAYS = 180
    monthly = CategoryFactory(code="jiaoyi", name="交易", recertification_days=30)
    sub = CategoryFactory(code="dingdan", name="订单", parent=monthly)
    tags = {
        "monthly_due": publish(draft_tag(gw.own_brand, monthly, "a")),
        "monthly_ok": publish(draft_tag(gw.own_brand, monthly, "b")),
        "sub_due": publish(draft_tag(gw.own_brand, sub, "c")),
        "default_ok": publish(draft_tag(gw.own_brand, gw.category, "d")),
        "default_due": publish(draft_tag(gw.own_brand, gw.category, "e")),
        "draft": draft_tag(gw.own_brand, monthly, "f"),
    }
    ages = {
        "monthly_due": 30,
        "monthly_ok": 29,
        "sub_due": 31,
        "default_ok": 179,
        "default_due": 181,
        "draft": 400,
    }
    for name, days in ages.items():
        Tag.objects.filter(pk=tags[name].pk).update(certified_at=NOW - dt.timedelta(days=days))
    Tag.objects.filter(pk__in=[gw.own_tag.pk, gw.other_tag.pk]).update(certified_at=NOW)
    return tags


def test_recertification_due_by_category_period(gw, periods):
    due = catalog.recertification_due(Tag.objects.all(), now=NOW)
    assert {t.pk for t in due} == {periods[n].pk for n in ("monthly_due", "sub_due", "default_due")}


def test_certify_records_history_and_audit(gw, periods):
    tag = periods["monthly_due"]
    history = tag.history.count()
    start = timezone.now()
    gov.certify(gw.steward, tag, note="口径已复核")
    tag = fresh(tag)
    assert tag.certified_at >= start and tag.certified_by == gw.steward
    record = tag.history.order_by("-history_date", "-history_id").first()
    assert tag.history.count() == history + 1
    assert record.history_user == gw.steward
    assert record.history_change_reason == "口径已复核"
    event = AuditEvent.objects.get(action=AuditAction.CERTIFIED)
    assert event.actor == gw.steward and event.tag == tag
    assert event.business_line == gw.own_line and event.brand == gw.own_brand
    assert event.change_request is None and event.detail == {"note": "口径已复核"}
    assert tag not in catalog.recertification_due(Tag.objects.all())
    assert tag.published_version == 1 and tag.status == TagStatus.PUBLISHED


@pytest.mark.parametrize("role", ["operator", "analyst", "nobody", "other_steward"])
def test_certify_refused(gw, periods, role):
    tag = periods["monthly_due"]
    with pytest.raises(PermissionDenied):
        gov.certify(getattr(gw, role), tag)
    assert fresh(tag).certified_at == NOW - dt.timedelta(days=30)
    assert not AuditEvent.objects.filter(action=AuditAction.CERTIFIED).exists()


def test_certify_by_admin_and_only_published(gw, periods):
    gov.certify(gw.admin, periods["default_due"])
    assert fresh(periods["default_due"]).certified_by == gw.admin
    with pytest.raises(ValidationError):
        gov.certify(gw.steward, periods["draft"])
    assert not AuditEvent.objects.filter(action=AuditAction.CERTIFIED, tag=periods["draft"]).exists()


def test_open_requests_for_tag(gw):
    draft = request_in_state(gw, S.DRAFT)
    approved = request_in_state(gw, S.APPROVED, proposer=gw.operator2)
    request_in_state(gw, S.REJECTED)
    assert set(gov.open_requests_for_tag(gw.own_tag)) == {draft, approved}
