"""A journey's life as a table of states × actions: each allowed (with the state it
leads to) or refused (with the reason), four eyes on review, versions on edit."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tagportal.journeys import lifecycle
from tagportal.journeys.choices import InstanceState, JourneyStatus, VersionState
from tagportal.journeys.models import JourneyInstance
from tagportal.notifications.models import Notification
from tests.factories import UserFactory

from .portal_helpers import draft, live, simple_graph


def in_state(world, status: str):
    """A journey in ``status`` made through the services."""
    if status == JourneyStatus.DRAFT:
        return draft(world)
    journey = draft(world)
    version = lifecycle.submit(world.operator, journey)
    if status == JourneyStatus.PENDING:
        journey.refresh_from_db()
        return journey
    lifecycle.approve(world.steward, version)
    if status == JourneyStatus.PAUSED:
        lifecycle.pause(world.operator, journey)
    elif status == JourneyStatus.ENDED:
        lifecycle.end(world.operator, journey)
    journey.refresh_from_db()
    return journey


def act(world, journey, action: str):
    if action == "submit":
        return lifecycle.submit(world.operator, journey)
    if action == "approve":
        return lifecycle.approve(world.steward, lifecycle.latest_version(journey))
    if action == "reject":
        return lifecycle.reject(world.steward, lifecycle.latest_version(journey), "文案需要修改")
    return getattr(lifecycle, action)(world.operator, journey)


# (state, action) → the journey's status afterwards, or the exception refusing it
TABLE = [
    ("draft", "submit", JourneyStatus.PENDING),
    ("draft", "approve", lifecycle.InvalidTransition),
    ("draft", "pause", lifecycle.InvalidTransition),
    ("draft", "resume", lifecycle.InvalidTransition),
    ("draft", "end", lifecycle.InvalidTransition),
    ("pending", "submit", lifecycle.InvalidTransition),
    ("pending", "approve", JourneyStatus.LIVE),
    ("pending", "reject", JourneyStatus.DRAFT),
    ("pending", "pause", lifecycle.InvalidTransition),
    ("live", "submit", lifecycle.InvalidTransition),
    ("live", "approve", lifecycle.InvalidTransition),
    ("live", "pause", JourneyStatus.PAUSED),
    ("live", "resume", lifecycle.InvalidTransition),
    ("live", "end", JourneyStatus.ENDED),
    ("paused", "resume", JourneyStatus.LIVE),
    ("paused", "pause", lifecycle.InvalidTransition),
    ("paused", "end", JourneyStatus.ENDED),
    ("ended", "resume", lifecycle.InvalidTransition),
    ("ended", "pause", lifecycle.InvalidTransition),
    ("ended", "end", lifecycle.InvalidTransition),
    ("ended", "submit", lifecycle.InvalidTransition),
]


@pytest.mark.parametrize("state, action, outcome", TABLE)
def test_states_and_actions(world, state, action, outcome):
    journey = in_state(world, state)
    assert journey.status == state
    if isinstance(outcome, type):
        with pytest.raises(outcome) as refused:
            act(world, journey, action)
        assert str(refused.value)
        journey.refresh_from_db()
        assert journey.status == state
    else:
        act(world, journey, action)
        journey.refresh_from_db()
        assert journey.status == outcome


def test_the_refusal_names_the_state_in_chinese(world):
    from django.utils import translation

    journey = in_state(world, "draft")
    with translation.override("zh-hans"), pytest.raises(lifecycle.InvalidTransition) as refused:
        lifecycle.pause(world.operator, journey)
    assert "只有运行中的旅程才能暂停" in str(refused.value)


def test_four_eyes_the_proposer_may_not_approve(world):
    steward_proposes = draft(world)
    version = lifecycle.submit(world.steward, steward_proposes)
    with pytest.raises(PermissionDenied, match="Four eyes"):
        lifecycle.approve(world.steward, version)
    with pytest.raises(PermissionDenied, match="Four eyes"):
        lifecycle.reject(world.steward, version, "不行")
    version.refresh_from_db()
    assert version.state == VersionState.PENDING
    assert version not in lifecycle.review_queue(world.steward)


def test_an_admin_is_held_to_four_eyes_too(world):
    journey = draft(world)
    version = lifecycle.submit(world.admin, journey)
    with pytest.raises(PermissionDenied):
        lifecycle.approve(world.admin, version)


def test_only_a_steward_of_the_brand_approves(world):
    journey = draft(world)
    version = lifecycle.submit(world.operator, journey)
    for user in (world.operator, world.analyst, world.nobody):
        with pytest.raises(PermissionDenied):
            lifecycle.approve(user, version)
    other_steward = UserFactory(username="st2", role="data_steward", grants=[(world.other_line, "stewards")])
    with pytest.raises(PermissionDenied, match="steward"):
        lifecycle.approve(other_steward, version)
    assert list(lifecycle.review_queue(world.steward)) == [version]
    assert list(lifecycle.review_queue(other_steward)) == []


def test_approval_makes_the_version_live_and_tells_the_proposer(world, django_capture_on_commit_callbacks):
    journey = draft(world)
    with django_capture_on_commit_callbacks(execute=True):
        version = lifecycle.submit(world.operator, journey)
    assert Notification.objects.filter(recipient=world.steward, subject__contains="复购召回").exists()
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.approve(world.steward, version, "可以")
    journey.refresh_from_db()
    version.refresh_from_db()
    assert journey.live_version_id == version.pk
    assert (version.state, version.approved_by, version.review_note) == (
        VersionState.APPROVED,
        world.steward,
        "可以",
    )
    assert Notification.objects.filter(recipient=world.operator, subject__contains="复购召回").exists()


def test_reject_needs_a_reason(world):
    journey = draft(world)
    version = lifecycle.submit(world.operator, journey)
    with pytest.raises(ValidationError) as refused:
        lifecycle.reject(world.steward, version, "  ")
    assert "note" in refused.value.message_dict
    lifecycle.reject(world.steward, version, "等待时间太短")
    version.refresh_from_db()
    assert (version.state, version.review_note) == (VersionState.REJECTED, "等待时间太短")


def test_an_edit_of_a_live_journey_makes_a_new_version_and_people_stay_on_theirs(world):
    journey = live(world)
    v1 = journey.live_version
    person = JourneyInstance.objects.create(
        journey=journey, version=v1, brand=journey.brand, oneid=7, node="n2", entered_at=v1.approved_at
    )
    v2 = lifecycle.new_version(world.operator, journey, simple_graph(minutes=120))
    assert (v2.number, v2.state) == (2, VersionState.DRAFT)
    # editing the draft again rewrites it, no third version
    again = lifecycle.new_version(world.operator, journey, simple_graph(minutes=180))
    assert again.pk == v2.pk and journey.versions.count() == 2
    lifecycle.submit(world.operator, journey)
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.LIVE and journey.live_version_id == v1.pk  # v1 runs meanwhile
    with pytest.raises(lifecycle.InvalidTransition, match="waiting for review"):
        lifecycle.new_version(world.operator, journey, simple_graph())
    lifecycle.approve(world.steward, v2)
    journey.refresh_from_db()
    v1.refresh_from_db()
    assert journey.live_version_id == v2.pk
    assert v1.state == VersionState.SUPERSEDED
    person.refresh_from_db()
    assert person.version_id == v1.pk


def test_a_rejected_version_is_kept_and_the_edit_makes_the_next(world):
    journey = draft(world)
    v1 = lifecycle.submit(world.operator, journey)
    lifecycle.reject(world.steward, v1, "补充目标")
    v2 = lifecycle.new_version(world.operator, journey, simple_graph(minutes=30))
    assert v2.number == 2
    v1.refresh_from_db()
    assert v1.state == VersionState.REJECTED


def test_an_invalid_graph_is_refused_with_its_problems(world):
    journey = draft(world)
    bad = simple_graph()
    bad["edges"] = []
    with pytest.raises(ValidationError) as refused:
        lifecycle.new_version(world.operator, journey, bad)
    assert refused.value.message_dict["graph"]
    assert lifecycle.latest_version(journey).graph == simple_graph()


def test_ending_moves_the_people_out(world):
    journey = live(world)
    person = JourneyInstance.objects.create(
        journey=journey,
        version=journey.live_version,
        brand=journey.brand,
        oneid=9,
        node="n2",
        state=InstanceState.WAITING,
        entered_at=journey.live_version.approved_at,
    )
    lifecycle.end(world.operator, journey)
    person.refresh_from_db()
    assert person.state == InstanceState.EXITED and person.left_at is not None


def test_editors_are_the_brands_operators(world):
    journey = draft(world)
    for user in (world.analyst, world.nobody):
        with pytest.raises(PermissionDenied):
            lifecycle.new_version(user, journey, simple_graph())
    other_operator = UserFactory(username="op2", role="operator", grants=[(world.other_line, "operators")])
    with pytest.raises(PermissionDenied):
        lifecycle.submit(other_operator, journey)
    with pytest.raises(PermissionDenied):
        lifecycle.create(other_operator, world.own_brand, "别人的", simple_graph())


def test_a_name_is_unique_per_brand(world):
    draft(world)
    with pytest.raises(ValidationError) as refused:
        draft(world)
    assert "name" in refused.value.message_dict
