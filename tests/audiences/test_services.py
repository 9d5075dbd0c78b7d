"""Audience services with known answers on the ``shop`` brand (10 people, 4 tags):
estimates, creating / editing / archiving (atomic, permission-checked), snapshots with
exact joined and left members, pins that go stale when a tag publishes a newer version,
re-pinning (through a data steward for a live audience), export with and without PII,
and tag usage recorded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from tagportal.audiences import expressions as ex
from tagportal.audiences import services
from tagportal.audiences.models import Audience, AudienceSnapshot, AudienceStatus, RefreshTrigger
from tagportal.catalog.services import publish_tag
from tagportal.core.exceptions import Conflict
from tagportal.notifications.models import Notification
from tagportal.profiles import pii
from tagportal.profiles.models import Customer, Identity
from tagportal.usage import services as usage
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage, UsageBuffer

from ..factories import TagFactory, UserFactory
from .conftest import CHURN, DAYS, SKIN, publish_new_computation, store_result

SKIN_CODE = "yimei_visit_skin_type"
DAYS_CODE = "yimei_visit_last_visit_days"
CHURN_CODE = "yimei_visit_churn_risk"
OILY = {"tag": SKIN_CODE, "op": "eq", "value": "oily"}
RECENT = {"tag": DAYS_CODE, "op": "lte", "value": 30}
NOT_CHURNING = {"not": {"tag": CHURN_CODE, "op": "eq", "value": "high"}}
#: oily [1, 2, 3, 4] & at most 30 days [1, 2, 3] - churn high [2, 4, 9] = [1, 3]
EXPRESSION = {"all": [OILY, RECENT, NOT_CHURNING]}


def churn(high):
    return {"high": sorted(high), "low": [i for i in range(1, 11) if i not in high]}


@pytest.fixture
def audience(shop, world):
    return services.create_audience(
        world.operator, brand=shop.brand, name="油皮近访客", expression=EXPRESSION
    )


def latest(audience) -> AudienceSnapshot:
    return audience.snapshots.order_by("-number").first()


def uses(kind) -> dict[str, int]:
    usage.aggregate()
    out: dict[str, int] = {}
    for code, count in TagUsage.objects.filter(kind=kind).values_list("tag__code", "count"):
        out[code] = out.get(code, 0) + count
    return out


# ---------------------------------------------------------------------------
# Estimate


def test_estimate_counts_the_expression(shop, world):
    result = services.estimate(world.operator, shop.brand, EXPRESSION)
    assert result["size"] == 2
    assert result["population"] == 10
    assert result["share"] == pytest.approx(0.2)
    assert result["expression"] == EXPRESSION
    assert result["text"] == ex.to_text(EXPRESSION)
    assert result["tag_versions"] == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 1}
    assert result["took_ms"] >= 0


def test_estimate_reads_the_text_form_and_writes_nothing(shop, world):
    text = services.estimate(world.operator, shop.brand, EXPRESSION)["text"]
    before = (Audience.objects.count(), AudienceSnapshot.objects.count(), UsageBuffer.objects.count())
    again = services.estimate(world.analyst, shop.brand, text)
    assert again["size"] == 2 and again["expression"] == EXPRESSION
    assert (Audience.objects.count(), AudienceSnapshot.objects.count(), UsageBuffer.objects.count()) == before


def test_estimate_names_an_unknown_tag(shop, world):
    with pytest.raises(ValidationError) as caught:
        services.estimate(
            world.operator, shop.brand, {"all": [OILY, {"tag": "yimei_visit_nope", "op": "is_set"}]}
        )
    assert caught.value.message_dict == {
        "all[1].tag": ["unknown tag “yimei_visit_nope”: no published tag of this brand has that code"]
    }


def test_estimate_names_an_unknown_value_and_a_syntax_error(shop, world):
    with pytest.raises(ValidationError) as caught:
        services.estimate(world.operator, shop.brand, {"tag": SKIN_CODE, "op": "eq", "value": "greasy"})
    assert "“greasy” is not a value of the tag" in str(caught.value.message_dict["value"])
    with pytest.raises(ValidationError) as caught:
        services.estimate(world.operator, shop.brand, "@yimei_visit_skin_type = ")
    assert "text" in caught.value.message_dict


def test_estimate_names_tags_not_computed_yet(shop, world):
    fresh = TagFactory(
        brand=shop.brand,
        category=world.category,
        code="yimei_visit_new_tag",
        name="新标签",
        value_type="boolean",
        values=[],
        definition={"type": "manual"},
        kind="manual",
    )
    publish_tag(fresh)
    with pytest.raises(ValidationError) as caught:
        services.estimate(
            world.operator, shop.brand, {"tag": "yimei_visit_new_tag", "op": "eq", "value": True}
        )
    assert "yimei_visit_new_tag" in caught.value.message_dict["expression"][0]


def test_estimate_of_another_brand_is_refused(shop, world):
    with pytest.raises(PermissionDenied):
        services.estimate(world.operator, world.other_brand, EXPRESSION)
    with pytest.raises(PermissionDenied):
        services.estimate(world.nobody, shop.brand, EXPRESSION)


# ---------------------------------------------------------------------------
# Create, update, archive


def test_create_pins_the_versions_and_takes_the_first_snapshot(shop, world, audience):
    assert audience.name == "油皮近访客"
    assert audience.brand == shop.brand and audience.business_line == world.own_line
    assert audience.owner == world.operator
    assert audience.expression == EXPRESSION
    assert audience.expression_text == ex.to_text(EXPRESSION)
    assert audience.pinned_versions == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 1}
    assert set(audience.tags.values_list("code", flat=True)) == {SKIN_CODE, DAYS_CODE, CHURN_CODE}
    stored = Audience.objects.get(pk=audience.pk)
    assert (stored.size, stored.population, stored.share) == (2, 10, 0.2)
    assert stored.last_calculated_at is not None and not stored.is_calculating
    snapshot = latest(audience)
    assert (snapshot.number, snapshot.trigger, snapshot.size, snapshot.joined, snapshot.left) == (
        1,
        RefreshTrigger.CREATED,
        2,
        2,
        0,
    )
    assert snapshot.tag_versions == audience.pinned_versions
    assert snapshot.expression == EXPRESSION
    assert sorted(services.snapshot_members(snapshot)) == [1, 3]
    assert sorted(services.members(audience)) == [1, 3]
    # one history record (the creation): the size is computation state, not an edit
    assert [h.history_change_reason for h in stored.history.all()] == ["Created"]


@pytest.mark.parametrize(
    ("who", "brand"),
    [("analyst", "own_brand"), ("nobody", "own_brand"), ("operator", "other_brand")],
)
def test_create_is_refused_without_the_right_and_writes_nothing(shop, world, who, brand):
    with pytest.raises(PermissionDenied):
        services.create_audience(
            getattr(world, who), brand=getattr(world, brand), name="不该存在", expression=EXPRESSION
        )
    assert not Audience.objects.exists() and not AudienceSnapshot.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"expression": {"tag": "yimei_visit_nope", "op": "is_set"}}, "tag", "yimei_visit_nope"),
        ({"expression": "@yimei_visit_skin_type ="}, "text", ""),
        ({"name": "  "}, "name", ""),
        ({"status": "archived"}, "status", "draft or active"),
        ({"refresh_every_hours": 0}, "refresh_every_hours", "at least 1"),
    ],
)
def test_create_with_bad_input_names_it_and_writes_nothing(shop, world, changes, field, message):
    data = {"brand": shop.brand, "name": "油皮", "expression": EXPRESSION, **changes}
    with pytest.raises(ValidationError) as caught:
        services.create_audience(world.operator, **data)
    assert field in caught.value.message_dict
    assert message in " ".join(caught.value.message_dict[field])
    assert not Audience.objects.exists() and not AudienceSnapshot.objects.exists()
    assert not Audience.history.exists()


def test_create_accepts_the_text_form(shop, world):
    audience = services.create_audience(
        world.steward, brand=shop.brand, name="文本", expression=ex.to_text(EXPRESSION), status="draft"
    )
    assert audience.expression == EXPRESSION and audience.size == 2 and audience.status == "draft"


def test_update_name_and_schedule_keep_the_snapshots(world, audience):
    updated = services.update_audience(
        world.operator, audience, name="油皮近访客（新）", description="说明", refresh_every_hours=6
    )
    assert (updated.name, updated.description, updated.refresh_every_hours) == ("油皮近访客（新）", "说明", 6)
    assert updated.snapshots.count() == 1
    record = updated.history.first()
    assert "name" in record.history_change_reason and record.history_user == world.operator


def test_update_expression_repins_and_refreshes(shop, world, audience):
    updated = services.update_audience(world.operator, audience, expression=OILY)
    assert updated.expression == OILY and updated.expression_text == ex.to_text(OILY)
    assert updated.pinned_versions == {SKIN_CODE: 1}
    assert list(updated.tags.values_list("code", flat=True)) == [SKIN_CODE]
    snapshot = latest(updated)
    assert (snapshot.number, snapshot.trigger, snapshot.size, snapshot.joined, snapshot.left) == (
        2,
        RefreshTrigger.MANUAL,
        4,
        2,
        0,
    )
    diff = services.snapshot_diff(snapshot)
    assert (sorted(diff["joined"]), sorted(diff["left"])) == ([2, 4], [])
    assert updated.size == 4


def test_update_refuses_bad_input_without_writing(world, audience):
    before = (audience.expression, audience.snapshots.count(), audience.history.count())
    with pytest.raises(ValidationError) as caught:
        services.update_audience(
            world.operator, audience, expression={"tag": "yimei_visit_nope", "op": "is_set"}
        )
    assert "yimei_visit_nope" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        services.update_audience(world.operator, audience, brand=world.other_brand)
    assert "brand" in caught.value.message_dict
    audience.refresh_from_db()
    assert (audience.expression, audience.snapshots.count(), audience.history.count()) == before


def test_update_is_refused_to_the_analyst_and_for_a_live_expression(world, audience):
    with pytest.raises(PermissionDenied):
        services.update_audience(world.analyst, audience, name="x")
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    audience.refresh_from_db()
    with pytest.raises(Conflict, match="live"):
        services.update_audience(world.operator, audience, expression=OILY)
    # other fields of a live audience may still change
    assert services.update_audience(world.operator, audience, name="改名").name == "改名"
    audience.refresh_from_db()
    assert audience.expression == EXPRESSION


def test_archive(world, audience):
    with pytest.raises(PermissionDenied):
        services.archive_audience(world.analyst, audience)
    archived = services.archive_audience(world.operator, audience)
    assert archived.status == AudienceStatus.ARCHIVED
    assert archived.snapshots.count() == 1
    assert not services.audiences_using(audience.tags.first()).exists()
    with pytest.raises(Conflict):
        services.refresh(archived, "manual", world.operator)
    assert services.refresh(archived, "schedule") is None
    with pytest.raises(Conflict):
        services.update_audience(world.operator, archived, name="复活")


def test_a_live_audience_cannot_be_archived(world, audience):
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    audience.refresh_from_db()
    with pytest.raises(Conflict, match="journey"):
        services.archive_audience(world.operator, audience)
    assert Audience.objects.get(pk=audience.pk).status == AudienceStatus.ACTIVE


def test_audiences_using(shop, world, audience):
    other = services.create_audience(world.operator, brand=shop.brand, name="到店", expression=RECENT)
    assert set(services.audiences_using(shop.days)) == {audience, other}
    assert list(services.audiences_using(shop.skin.pk)) == [audience]
    assert not services.audiences_using(shop.visited).exists()


# ---------------------------------------------------------------------------
# Refresh and snapshots


def test_refresh_records_who_joined_and_left(shop, world, audience):
    store_result(shop.churn, churn([2, 3, 4, 9]))  # 3 now churns
    second = services.refresh(audience, "manual", world.operator)
    assert (second.number, second.trigger, second.size, second.joined, second.left) == (2, "manual", 1, 0, 1)
    assert sorted(services.snapshot_diff(second)["left"]) == [3]

    store_result(shop.churn, churn([9]))  # 2 and 3 do not churn any more
    third = services.refresh(audience, "schedule")
    assert (third.number, third.trigger, third.size, third.joined, third.left) == (3, "schedule", 3, 2, 0)
    assert sorted(services.snapshot_members(third)) == [1, 2, 3]
    diff = services.snapshot_diff(third)
    assert (sorted(diff["joined"]), sorted(diff["left"])) == ([2, 3], [])
    # against the first snapshot: only 2 is new
    first = audience.snapshots.get(number=1)
    diff = services.snapshot_diff(third, first)
    assert (sorted(diff["joined"]), sorted(diff["left"])) == ([2], [])
    # the first snapshot: everybody joined
    assert sorted(services.snapshot_diff(first)["joined"]) == [1, 3]

    audience.refresh_from_db()
    assert (audience.size, audience.population, audience.errors_calculating, audience.last_error) == (
        3,
        10,
        0,
        "",
    )
    assert audience.last_calculated_at == third.taken_at
    assert sorted(services.members(audience)) == [1, 2, 3]
    assert audience.history.count() == 1  # refreshes do not add history records


def test_numbers_move_people_across_a_threshold(shop, world, audience):
    store_result(shop.days, {"recent": [1, 2, 3, 4], "older": [5, 6, 7]}, {**DAYS, 4: 20.0, 1: 45.0})
    snapshot = services.refresh(audience, "manual", world.operator)
    diff = services.snapshot_diff(snapshot)
    # oily & <= 30 days is now [2, 3, 4]; minus churn high [2, 4, 9] -> [3]
    assert (sorted(services.snapshot_members(snapshot)), sorted(diff["left"]), sorted(diff["joined"])) == (
        [3],
        [1],
        [],
    )


def test_refresh_counts_one_use_per_tag(shop, world, audience):
    services.refresh(audience, "manual", world.steward)
    services.refresh(audience, "schedule")
    counts = uses(UsageKind.AUDIENCE)
    assert counts == {SKIN_CODE: 3, DAYS_CODE: 3, CHURN_CODE: 3}  # created + 2 refreshes
    clients = dict(
        TagUsage.objects.filter(kind=UsageKind.AUDIENCE, tag=shop.skin).values_list("client", "count")
    )
    assert clients == {world.operator.pk: 2, world.steward.pk: 1}  # the owner without a user


# ---------------------------------------------------------------------------
# Pins


def publish_and_compute_churn(shop, high):
    publish_new_computation(shop.churn)
    store_result(shop.churn, churn(high))


def test_a_newer_version_makes_the_pin_stale_and_stops_refreshes(shop, world, audience):
    publish_new_computation(shop.churn)
    assert services.stale_pins(audience) == [
        {"code": CHURN_CODE, "name": "流失风险", "pinned": 1, "current": 2}
    ]
    # the result is still of version 1: refreshing goes on
    assert services.refresh(audience, "manual", world.operator).number == 2

    store_result(shop.churn, churn([2, 3, 4, 9]))  # version 2 computed
    with pytest.raises(Conflict) as caught:
        services.refresh(audience, "manual", world.operator)
    assert CHURN_CODE in str(caught.value) and caught.value.extra == {"stale": [CHURN_CODE]}
    assert services.refresh(audience, "recompute") is None
    audience.refresh_from_db()
    assert CHURN_CODE in audience.last_error and "re-pin" in audience.last_error
    assert audience.errors_calculating == 2 and not audience.is_calculating
    assert audience.snapshots.count() == 2 and audience.size == 2  # nothing refreshed silently

    repinned = services.repin(world.operator, audience)
    assert repinned.pinned_versions == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 2}
    assert services.stale_pins(repinned) == []
    snapshot = latest(repinned)
    assert (snapshot.number, snapshot.trigger, snapshot.size, snapshot.left) == (
        3,
        RefreshTrigger.REPIN,
        1,
        1,
    )
    assert snapshot.tag_versions[CHURN_CODE] == 2
    assert (repinned.errors_calculating, repinned.last_error) == (0, "")
    assert "2" in repinned.history.first().history_change_reason
    # and refreshing works again
    assert services.refresh(repinned, "manual", world.operator).number == 4


def test_repin_with_nothing_computed_yet_says_so(shop, world, audience):
    publish_new_computation(shop.churn)
    with pytest.raises(Conflict, match="not computed"):
        services.repin(world.operator, audience)
    assert Audience.objects.get(pk=audience.pk).pinned_versions[CHURN_CODE] == 1


def test_repin_of_a_current_audience_is_a_conflict(world, audience):
    with pytest.raises(Conflict, match="already pinned"):
        services.repin(world.operator, audience)
    with pytest.raises(PermissionDenied):
        services.repin(world.analyst, audience)


def test_a_live_audience_is_repinned_after_a_stewards_approval(shop, world, audience):
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    audience.refresh_from_db()
    publish_and_compute_churn(shop, [2, 3, 4, 9])

    waiting = services.repin(world.operator, audience)
    assert waiting.pinned_versions[CHURN_CODE] == 1
    assert waiting.repin_requested_by == world.operator and waiting.repin_requested_at is not None
    assert waiting.snapshots.count() == 1
    note = Notification.objects.get(recipient=world.steward)
    assert "油皮近访客" in note.subject and CHURN_CODE in note.body
    assert str(audience.pk) in note.url
    with pytest.raises(Conflict, match="waiting"):
        services.repin(world.operator, waiting)

    for who in (world.operator, world.analyst):
        with pytest.raises(PermissionDenied):
            services.approve_repin(who, waiting)
    approved = services.approve_repin(world.steward, waiting)
    assert approved.pinned_versions[CHURN_CODE] == 2
    assert approved.repin_requested_by is None and approved.repin_requested_at is None
    assert (latest(approved).trigger, latest(approved).size) == (RefreshTrigger.REPIN, 1)
    assert Notification.objects.filter(recipient=world.operator, subject__contains="油皮近访客").exists()
    with pytest.raises(Conflict, match="No re-pin"):
        services.approve_repin(world.steward, approved)


def test_a_steward_cannot_approve_their_own_repin(shop, world, audience):
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    audience.refresh_from_db()
    publish_and_compute_churn(shop, [2, 4, 9])
    waiting = services.repin(world.steward, audience)
    with pytest.raises(PermissionDenied, match="own"):
        services.approve_repin(world.steward, waiting)
    other_line_steward = UserFactory(
        username="st2", role="data_steward", grants=[(world.other_line, "stewards")]
    )
    with pytest.raises(PermissionDenied):
        services.approve_repin(other_line_steward, waiting)
    assert services.approve_repin(world.admin, waiting).pinned_versions[CHURN_CODE] == 2


# ---------------------------------------------------------------------------
# Export


def identity(brand, oneid, type_, value, app=""):
    customer = Customer.objects.get(brand=brand, oneid=oneid)
    return Identity.objects.create(
        brand=brand,
        customer=customer,
        type=type_,
        app=app,
        value_hash=pii.hash_value(type_, value),
        value="" if type_ == "phone" else value,
        masked=pii.mask(type_, value),
    )


def test_export_oneids(shop, world, audience):
    assert list(services.export_rows(world.operator, audience)) == [["oneid"], [1], [3]]
    body = services.export_csv(world.operator, audience)
    assert body.startswith(b"\xef\xbb\xbf")
    assert body.decode("utf-8-sig").splitlines() == ["oneid", "1", "3"]
    assert uses(UsageKind.EXPORT) == {SKIN_CODE: 2, DAYS_CODE: 2, CHURN_CODE: 2}


def test_export_identities_masked_unless_the_user_may_see_pii(shop, world, audience):
    identity(shop.brand, 1, "wechat_unionid", "oUnionAbcdef123")
    identity(shop.brand, 3, "wechat_unionid", "oUnionXyz98765")
    identity(shop.brand, 5, "wechat_unionid", "oUnionNotAMember")  # not in the audience
    identity(shop.brand, 1, "phone", "13812345678")
    masked = services.export_csv(world.operator, audience, "wechat_unionid").decode("utf-8-sig").splitlines()
    assert masked == ["oneid,type,app,value", "1,wechat_unionid,,oUn****23", "3,wechat_unionid,,oUn****65"]
    clear = services.export_csv(world.admin, audience, "wechat_unionid").decode("utf-8-sig").splitlines()
    assert clear[1:] == ["1,wechat_unionid,,oUnionAbcdef123", "3,wechat_unionid,,oUnionXyz98765"]
    phones = services.export_csv(world.admin, audience, "phone").decode("utf-8-sig").splitlines()
    assert phones == ["oneid,type,app,value", "1,phone,,138******78"]  # phones are never in clear


def test_export_refusals(shop, world, audience):
    with pytest.raises(PermissionDenied):
        services.export_csv(world.analyst, audience)
    stranger = UserFactory(username="op2", role="operator", grants=[(world.other_line, "operators")])
    with pytest.raises(PermissionDenied):
        services.export_csv(stranger, audience)
    with pytest.raises(ValidationError) as caught:
        services.export_csv(world.operator, audience, "qq_number")
    assert "qq_number" in caught.value.message_dict["identity_type"][0]
    assert not UsageBuffer.objects.filter(kind=UsageKind.EXPORT).exists()


# ---------------------------------------------------------------------------
# Schedule


def test_due_for_refresh(shop, world, audience):
    now = timezone.now()
    assert services.due_for_refresh(now) == []  # no schedule
    scheduled = services.update_audience(world.operator, audience, refresh_every_hours=2)
    assert services.due_for_refresh(now) == []
    assert services.due_for_refresh(now + dt.timedelta(hours=2, minutes=1)) == [scheduled]
    # after a failure it waits a back-off counted from the attempt
    Audience.objects.filter(pk=audience.pk).update(errors_calculating=5, calculation_started_at=now)
    assert services.due_for_refresh(now + dt.timedelta(hours=2, minutes=1)) == []  # 15 min * 2**4 = 4 h
    assert services.due_for_refresh(now + dt.timedelta(hours=4)) == [scheduled]
    # refreshing right now: not twice, unless it hung
    Audience.objects.filter(pk=audience.pk).update(
        errors_calculating=0, is_calculating=True, calculation_started_at=now + dt.timedelta(hours=2)
    )
    assert services.due_for_refresh(now + dt.timedelta(hours=2, minutes=30)) == []
    assert services.due_for_refresh(now + dt.timedelta(hours=3, minutes=1)) == [scheduled]
    services.archive_audience(world.operator, scheduled)
    assert services.due_for_refresh(now + dt.timedelta(days=1)) == []


def test_skin_fixture_is_what_the_expression_assumes():
    assert set(SKIN["oily"]) & {i for i, d in DAYS.items() if d <= 30} - set(CHURN["high"]) == {1, 3}
