"""Lifecycles: the change request's (every state × every action, allowed or refused)
and the tag's (draft → in review → published → deprecated → retired, restore, merge,
roll back), only ever moved by applying an approved request."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tagportal.catalog import services as catalog
from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag, TagAlias, TagVersion
from tagportal.governance import services as gov
from tagportal.governance.choices import AuditAction, ChangeKind, RequestState
from tagportal.governance.models import AuditEvent, ChangeRequest
from tagportal.governance.services import InvalidTransition, ItemSpec

from ..conftest import client_for
from ..factories import BrandFactory
from .conftest import (
    BOOL_DEF,
    bool_tag,
    draft_tag,
    fresh,
    governance_state,
    metric_def,
    publish,
    request_in_state,
    update_spec,
)

S = RequestState
ACTIONS = ("submit", "withdraw", "approve", "reject", "request_changes", "apply")
#: state -> {action: the state it leads to}; every other action is refused.
ALLOWED = {
    S.DRAFT: {"submit": S.SUBMITTED, "withdraw": S.WITHDRAWN},
    S.SUBMITTED: {
        "withdraw": S.WITHDRAWN,
        "approve": S.APPROVED,
        "reject": S.REJECTED,
        "request_changes": S.CHANGES_REQUESTED,
    },
    S.CHANGES_REQUESTED: {"submit": S.SUBMITTED, "withdraw": S.WITHDRAWN},
    S.APPROVED: {"apply": S.APPLIED},
    S.REJECTED: {},
    S.APPLIED: {},
    S.WITHDRAWN: {},
}
TABLE = [(state, action) for state in ALLOWED for action in ACTIONS]


def do(w, action: str, cr: ChangeRequest):
    """``action`` by the person entitled to it: the proposer submits and withdraws, a
    steward of the line reviews and applies."""
    if action == "submit":
        return gov.submit(w.operator, cr)
    if action == "withdraw":
        return gov.withdraw(w.operator, cr)
    if action == "approve":
        return gov.approve(w.steward, cr, "同意")
    if action == "reject":
        return gov.reject(w.steward, cr, "不需要")
    if action == "request_changes":
        return gov.request_changes(w.steward, cr, "请补充")
    return gov.apply(w.steward, cr)


def test_the_table_covers_every_state_and_the_model_agrees():
    assert set(ALLOWED) == set(RequestState)
    from tagportal.governance.choices import REQUEST_TRANSITIONS

    for state, moves in ALLOWED.items():
        assert set(moves.values()) == set(REQUEST_TRANSITIONS[state])


@pytest.mark.parametrize(("state", "action"), TABLE, ids=[f"{s.value}-{a}" for s, a in TABLE])
def test_transition_table(gw, state, action):
    cr = request_in_state(gw, state)
    version_before = fresh(gw.own_tag).published_version
    expected = ALLOWED[state].get(action)
    if expected is None:
        before = governance_state()
        with pytest.raises(InvalidTransition) as exc:
            do(gw, action, cr)
        assert exc.value.extra["state"] == state
        assert fresh(cr).state == state
        assert governance_state() == before
        assert fresh(gw.own_tag).published_version == version_before
    else:
        do(gw, action, cr)
        assert fresh(cr).state == expected
        published = fresh(gw.own_tag).published_version
        assert published == (version_before + 1 if expected == S.APPLIED else version_before)


@pytest.mark.parametrize("state", list(ALLOWED), ids=[s.value for s in ALLOWED])
def test_transition_table_via_api(gw, state):
    """Every action on a request in ``state`` through the API: 200 with the new state,
    or 409 naming the current state and nothing changed."""
    refused = request_in_state(gw, state)
    for action in ACTIONS:
        expected = ALLOWED[state].get(action)
        cr = refused if expected is None else request_in_state(gw, state)
        actor = gw.operator if action in ("submit", "withdraw") else gw.steward
        path = f"/api/governance/change-requests/{cr.pk}/{action.replace('_', '-')}/"
        before = governance_state()
        response = client_for(actor).post(path, {"reason": "理由"}, format="json")
        if expected is None:
            assert response.status_code == 409, (action, response.content)
            assert response.json()["state"] == state
            assert fresh(cr).state == state
            assert governance_state() == before
        else:
            assert response.status_code == 200, (action, response.content)
            assert response.json()["state"] == expected
            assert fresh(cr).state == expected


def test_resubmitted_request_goes_through(gw):
    cr = request_in_state(gw, S.CHANGES_REQUESTED)
    assert cr.decision_reason == "请补充口径说明"
    gov.replace_items(gw.operator, cr, [update_spec(gw.own_tag, description="含预约到店")])
    gov.submit(gw.operator, cr)
    gov.approve(gw.steward, cr, "可以", apply_now=True)
    cr = fresh(cr)
    assert cr.state == S.APPLIED
    assert fresh(gw.own_tag).description == "含预约到店"
    actions = list(AuditEvent.objects.filter(change_request=cr).values_list("action", flat=True))
    assert actions == [
        AuditAction.PROPOSED,
        AuditAction.SUBMITTED,
        AuditAction.CHANGES_REQUESTED,
        AuditAction.SUBMITTED,
        AuditAction.APPROVED,
        AuditAction.APPLIED,
    ]


# ---------------------------------------------------------------------------
# Create: draft → in review → published v1


@pytest.fixture
def new_tag(gw):
    return bool_tag(gw.own_brand, gw.category, "fu_gou")


def test_create_publishes_version_one_only_when_applied(gw, new_tag):
    cr = gov.propose(gw.operator, [ItemSpec(ChangeKind.CREATE, new_tag)])
    assert fresh(new_tag).status == TagStatus.DRAFT
    gov.submit(gw.operator, cr)
    assert fresh(new_tag).status == TagStatus.IN_REVIEW
    with pytest.raises(catalog.TagLocked):
        catalog.update_tag(gw.operator, fresh(new_tag), name="改名")
    gov.approve(gw.steward, cr, "同意")
    tag = fresh(new_tag)
    assert tag.status == TagStatus.IN_REVIEW
    assert tag.published_version is None
    assert not TagVersion.objects.filter(tag=tag).exists()

    gov.apply(gw.steward, cr)
    tag, cr = fresh(new_tag), fresh(cr)
    assert cr.state == S.APPLIED and cr.applied_at is not None
    assert tag.status == TagStatus.PUBLISHED
    assert tag.published_version == 1
    version = TagVersion.objects.get(tag=tag)
    assert version.version == 1
    assert version.published_by == gw.steward
    assert version.snapshot["code"] == tag.code
    assert version.snapshot["definition"] == BOOL_DEF
    item = cr.items.get()
    assert item.produced_version == version
    assert item.base_version is None
    assert tag.certified_at is not None


@pytest.mark.parametrize("send_back", ["reject", "withdraw", "request_changes"])
def test_create_goes_back_to_draft_when_sent_back(gw, new_tag, send_back):
    cr = gov.propose(gw.operator, [ItemSpec(ChangeKind.CREATE, new_tag)], submit_now=True)
    assert fresh(new_tag).status == TagStatus.IN_REVIEW
    if send_back == "withdraw":
        gov.withdraw(gw.operator, cr)
    else:
        getattr(gov, send_back)(gw.steward, cr, "口径不清")
    tag = fresh(new_tag)
    assert tag.status == TagStatus.DRAFT
    assert tag.published_version is None
    assert not TagVersion.objects.filter(tag=tag).exists()
    catalog.update_tag(gw.operator, tag, name="复购意向")  # a draft is editable again
    if send_back == "request_changes":
        gov.submit(gw.operator, cr)
        assert fresh(new_tag).status == TagStatus.IN_REVIEW


def test_create_request_carries_the_full_snapshot_as_diff(gw, new_tag):
    cr = gov.propose(gw.operator, [ItemSpec(ChangeKind.CREATE, new_tag)])
    fields = {row["field"] for row in cr.items.get().diff}
    assert {"code", "name", "kind", "value_type", "definition"} <= fields
    assert all(row["old"] == "—" for row in cr.items.get().diff)


# ---------------------------------------------------------------------------
# Status moves


def _apply(w, kind, tag, **kw):
    cr = gov.propose(w.operator, [ItemSpec(kind, tag, **kw)], submit_now=True, confirm_dependents=True)
    return fresh(gov.approve(w.steward, cr, "同意", apply_now=True))


def test_deprecate_retire_restore(gw):
    tag = gw.own_tag
    versions = TagVersion.objects.filter(tag=tag).count()
    cr = _apply(gw, ChangeKind.DEPRECATE, tag)
    assert cr.state == S.APPLIED
    assert fresh(tag).status == TagStatus.DEPRECATED
    assert cr.items.get().diff == [
        {"field": "status", "label": "status", "old": "Published", "new": "Deprecated"}
    ]
    _apply(gw, ChangeKind.RESTORE, fresh(tag))
    assert fresh(tag).status == TagStatus.PUBLISHED
    _apply(gw, ChangeKind.RETIRE, fresh(tag))
    assert fresh(tag).status == TagStatus.RETIRED
    _apply(gw, ChangeKind.RESTORE, fresh(tag))
    tag = fresh(tag)
    assert tag.status == TagStatus.PUBLISHED
    assert tag.published_version == 1
    assert TagVersion.objects.filter(tag=tag).count() == versions  # status moves publish no version


def test_retire_from_deprecated(gw):
    _apply(gw, ChangeKind.DEPRECATE, gw.own_tag)
    _apply(gw, ChangeKind.RETIRE, fresh(gw.own_tag))
    assert fresh(gw.own_tag).status == TagStatus.RETIRED


# (kind, the tag's status) that a request may not be made for
REFUSED_KINDS = [
    (ChangeKind.CREATE, TagStatus.PUBLISHED),
    (ChangeKind.UPDATE, TagStatus.DRAFT),
    (ChangeKind.UPDATE, TagStatus.RETIRED),
    (ChangeKind.UPDATE, TagStatus.DEPRECATED),
    (ChangeKind.DEPRECATE, TagStatus.DRAFT),
    (ChangeKind.DEPRECATE, TagStatus.DEPRECATED),
    (ChangeKind.RETIRE, TagStatus.DRAFT),
    (ChangeKind.RETIRE, TagStatus.RETIRED),
    (ChangeKind.RESTORE, TagStatus.PUBLISHED),
    (ChangeKind.RESTORE, TagStatus.DRAFT),
    (ChangeKind.MERGE, TagStatus.DRAFT),
    (ChangeKind.MERGE, TagStatus.RETIRED),
]


@pytest.mark.parametrize(("kind", "status"), REFUSED_KINDS, ids=[f"{k}-{s}" for k, s in REFUSED_KINDS])
def test_kind_refused_for_tag_status(gw, kind, status):
    tag = draft_tag(gw.own_brand, gw.category, "zhuang_tai")
    if status != TagStatus.DRAFT:
        tag = publish(tag)
        if status in (TagStatus.DEPRECATED, TagStatus.RETIRED):
            catalog.set_status(tag, status)
            tag = fresh(tag)
    changes = {"description": "x"} if kind == ChangeKind.UPDATE else {}
    target = gw.own_tag if kind == ChangeKind.MERGE else None
    before = governance_state()
    with pytest.raises(ValidationError) as exc:
        gov.propose(gw.operator, [ItemSpec(kind, tag, changes, merge_target=target)], submit_now=True)
    assert "kind" in exc.value.message_dict
    assert governance_state() == before


# ---------------------------------------------------------------------------
# Merge: the source retires, its code resolves to the target


@pytest.fixture
def merged(gw):
    source = publish(draft_tag(gw.own_brand, gw.category, "dao_dian_old"))
    cr = _apply(gw, ChangeKind.MERGE, source, merge_target=gw.own_tag)
    return source, cr


def test_merge_retires_source_and_keeps_alias(gw, merged):
    source, cr = merged
    assert cr.state == S.APPLIED
    source = fresh(source)
    assert source.status == TagStatus.RETIRED
    assert fresh(gw.own_tag).status == TagStatus.PUBLISHED
    alias = TagAlias.objects.get(brand=gw.own_brand, code=source.code)
    assert alias.source == source and alias.target == gw.own_tag
    diff = cr.items.get().diff
    assert {"field": "merged_into", "label": "merged_into", "old": "—", "new": gw.own_tag.code} in diff

    tag, found_alias = catalog.resolve_code(Tag.objects.all(), gw.own_brand.code, source.code)
    assert tag == gw.own_tag and found_alias == alias
    tag, found_alias = catalog.resolve_code(Tag.objects.all(), "", source.code)
    assert tag == gw.own_tag and found_alias == alias
    # the target's own code resolves to itself, with no alias
    assert catalog.resolve_code(Tag.objects.all(), gw.own_brand.code, gw.own_tag.code) == (gw.own_tag, None)
    # scoped: another business line's steward does not reach it
    scoped = Tag.objects.restrict(gw.other_steward, "view")
    assert catalog.resolve_code(scoped, gw.own_brand.code, source.code) == (None, None)


def test_merged_code_via_lookup_api(gw, merged):
    source, _cr = merged
    response = client_for(gw.analyst).get(
        "/api/catalog/tags/lookup/", {"brand": gw.own_brand.code, "code": source.code}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["tag"]["id"] == gw.own_tag.pk
    assert body["tag"]["code"] == gw.own_tag.code
    assert source.code in body["notice"] and gw.own_tag.code in body["notice"]
    assert response["Warning"].startswith("299")
    other = client_for(gw.other_steward).get(
        "/api/catalog/tags/lookup/", {"brand": gw.own_brand.code, "code": source.code}
    )
    assert other.status_code == 404


def test_merge_chain_aliases_follow(gw, merged):
    source, _cr = merged
    final = publish(draft_tag(gw.own_brand, gw.category, "dao_dian_new"))
    _apply(gw, ChangeKind.MERGE, fresh(gw.own_tag), merge_target=final)
    tag, _alias = catalog.resolve_code(Tag.objects.all(), gw.own_brand.code, source.code)
    assert tag == final
    tag, _alias = catalog.resolve_code(Tag.objects.all(), gw.own_brand.code, gw.own_tag.code)
    assert tag == final


def test_merged_tag_cannot_be_restored(gw, merged):
    source, _cr = merged
    with pytest.raises(ValidationError) as exc:
        gov.propose(gw.operator, [ItemSpec(ChangeKind.RESTORE, fresh(source))])
    assert "kind" in exc.value.message_dict


def test_merge_target_rules(gw):
    source = publish(draft_tag(gw.own_brand, gw.category, "dao_dian_old"))
    same_line_brand = BrandFactory(code="ruiyanplus", business_line=gw.own_line)
    elsewhere = publish(draft_tag(same_line_brand, gw.category, "dao_dian_x"))
    unpublished = draft_tag(gw.own_brand, gw.category, "dao_dian_draft")
    before = governance_state()
    for target in (source, elsewhere, unpublished, gw.other_tag, None):
        with pytest.raises(ValidationError) as exc:
            gov.propose(gw.admin, [ItemSpec(ChangeKind.MERGE, source, merge_target=target)])
        assert "merge_target" in exc.value.message_dict
    # an operator does not even see the other business line's tag
    with pytest.raises(ValidationError):
        gov.propose(gw.operator, [ItemSpec(ChangeKind.MERGE, source, merge_target=gw.other_tag)])
    # only merges have a target
    with pytest.raises(ValidationError) as exc:
        gov.propose(gw.operator, [ItemSpec(ChangeKind.RETIRE, source, merge_target=gw.own_tag)])
    assert "merge_target" in exc.value.message_dict
    assert governance_state() == before


# ---------------------------------------------------------------------------
# Roll back: a change request too


def test_rollback_to_v1_produces_v3_with_v1_content(gw):
    tag = gw.own_tag
    v1 = TagVersion.objects.get(tag=tag, version=1).snapshot
    cr = gov.propose(
        gw.operator,
        [update_spec(tag, name="到店次数（新口径）", description="近30天", definition=metric_def(30))],
        submit_now=True,
    )
    gov.approve(gw.steward, cr, "同意", apply_now=True)
    assert fresh(tag).published_version == 2

    rollback = gov.propose(gw.operator, [ItemSpec(ChangeKind.UPDATE, fresh(tag), rollback_to=1)])
    assert rollback.title.startswith("Roll back") and "1" in rollback.title
    item = rollback.items.get()
    assert item.rollback_to == 1
    assert item.changes == {
        "name": v1["name"],
        "description": v1["description"],
        "definition": v1["definition"],
    }
    assert {row["field"] for row in item.diff} == {"name", "description", "definition"}
    gov.submit(gw.operator, rollback)
    gov.approve(gw.steward, rollback, "回滚", apply_now=True)

    tag = fresh(tag)
    assert tag.published_version == 3
    v3 = TagVersion.objects.get(tag=tag, version=3)
    assert fresh(rollback).items.get().produced_version == v3
    assert v3.snapshot == v1
    assert tag.name == v1["name"] and tag.definition == v1["definition"]


def test_rollback_restores_every_field_of_the_version(gw):
    """Rolling back to v1 after an update that also renamed the code gives v1's content,
    code included."""
    tag = gw.own_tag
    v1 = TagVersion.objects.get(tag=tag, version=1).snapshot
    cr = gov.propose(
        gw.operator, [update_spec(tag, code="yimei_visit_dao_dian_v2", name="新名字")], submit_now=True
    )
    gov.approve(gw.steward, cr, "同意", apply_now=True)
    rollback = gov.propose(
        gw.operator, [ItemSpec(ChangeKind.UPDATE, fresh(tag), rollback_to=1)], submit_now=True
    )
    gov.approve(gw.steward, rollback, "回滚", apply_now=True)
    assert TagVersion.objects.get(tag=tag, version=3).snapshot == v1


@pytest.mark.parametrize("version", [1, 7])
def test_rollback_to_current_or_unknown_version_refused(gw, version):
    before = governance_state()
    with pytest.raises(ValidationError) as exc:
        gov.propose(gw.operator, [ItemSpec(ChangeKind.UPDATE, gw.own_tag, rollback_to=version)])
    assert "rollback_to" in exc.value.message_dict
    assert governance_state() == before


# ---------------------------------------------------------------------------
# Only a request changes a published tag


@pytest.mark.parametrize(
    "status", [TagStatus.IN_REVIEW, TagStatus.PUBLISHED, TagStatus.DEPRECATED, TagStatus.RETIRED]
)
def test_update_tag_refused_past_draft(gw, status):
    tag = gw.own_tag
    if status == TagStatus.IN_REVIEW:
        tag = bool_tag(gw.own_brand, gw.category, "shen_he")
        gov.propose(gw.operator, [ItemSpec(ChangeKind.CREATE, tag)], submit_now=True)
    elif status != TagStatus.PUBLISHED:
        catalog.set_status(tag, status)
    tag = fresh(tag)
    assert tag.status == status
    for user in (gw.operator, gw.steward, gw.admin):
        with pytest.raises(catalog.TagLocked):
            catalog.update_tag(user, tag, name="直接改名")
    assert fresh(tag).name != "直接改名"


@pytest.mark.parametrize("role", ["operator", "steward", "admin"])
def test_patch_published_tag_via_catalog_api_refused(gw, role):
    history = gw.own_tag.history.count()
    response = client_for(getattr(gw, role)).patch(
        f"/api/catalog/tags/{gw.own_tag.pk}/", {"name": "直接改名"}, format="json"
    )
    assert response.status_code == 403, response.content
    assert "change request" in response.json()["detail"]
    tag = fresh(gw.own_tag)
    assert tag.name == "到店次数"
    assert tag.history.count() == history
    assert tag.published_version == 1


def test_patch_draft_tag_via_catalog_api_allowed(gw):
    tag = draft_tag(gw.own_brand, gw.category, "cao_gao")
    response = client_for(gw.operator).patch(
        f"/api/catalog/tags/{tag.pk}/", {"description": "草稿可以直接改"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert fresh(tag).description == "草稿可以直接改"
    assert fresh(tag).status == TagStatus.DRAFT
