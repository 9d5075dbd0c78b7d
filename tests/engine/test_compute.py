"""Batch computation of tag results on small injected frames: what is stored, how a
failing run keeps the previous result, superseded requests, partitions, drift, the
read helpers, and who may see and start computations."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from tagportal.catalog.models import Tag, TagVersion
from tagportal.catalog.services import publish_tag
from tagportal.engine import bitmaps as bm
from tagportal.engine import results, services
from tagportal.engine.models import RunStatus, TagComputation, TagRun, TagValueBitmap
from tests.conftest import client_for
from tests.factories import TagFactory

# 2026-11-28 10:00 in Beijing.
AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)

VISITS = {
    "type": "metric",
    "metric": {
        "agg": "count",
        "source": "events",
        "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
        "window": {"last_days": 90},
    },
}
BUCKETS = [
    {"code": "low", "label": "低", "max": 2},
    {"code": "high", "label": "高", "min": 2},
]
VIP = {"type": "condition", "condition": {"attribute": "member_level", "op": "eq", "value": "gold"}}
GENDER = {"type": "attribute", "attribute": "gender"}
GENDERS = [{"code": "female", "label": "女"}, {"code": "male", "label": "男"}]


def make_frames(gold=(1, 2, 3), visits=None):
    """People 1..12 with profiles, 100 with an event only, 200 with an order only."""
    ids = list(range(1, 13))
    profiles = pd.DataFrame(
        {
            "oneid": ids,
            "gender": ["female" if i % 2 else "male" for i in ids[:-1]] + [""],
            "member_level": ["gold" if i in gold else "silver" for i in ids],
        }
    )
    if visits is None:
        visits = {1: 3, 2: 1, 3: 5, 5: 2, 100: 1}
    rows = []
    for oneid, count in visits.items():
        for k in range(count):
            rows.append((oneid, AS_OF - dt.timedelta(days=k + 1), "store_visit"))
    rows.append((7, AS_OF - dt.timedelta(days=200), "store_visit"))  # outside the window
    rows.append((8, AS_OF - dt.timedelta(days=1), "page_view"))
    events = pd.DataFrame(rows, columns=["oneid", "time", "type"])
    events["time"] = pd.to_datetime(events["time"], utc=True)
    orders = pd.DataFrame(
        {"oneid": [4, 200], "time": pd.to_datetime([AS_OF, AS_OF], utc=True), "amount": [100.0, 20.0]}
    )
    return profiles, events, orders


FRAMES = make_frames()


def published(world, name, value_type, definition, values=None, brand=None):
    brand = brand or world.own_brand
    tag = TagFactory(
        brand=brand,
        category=world.category,
        code=f"{brand.business_line.code}_visit_{name}",
        name=name,
        value_type=value_type,
        values=values or [],
        definition=definition,
    )
    publish_tag(tag)
    tag.refresh_from_db()
    return tag


@pytest.fixture
def tags(world):
    class Tags:
        visits = published(world, "visits", "number", VISITS, BUCKETS)
        vip = published(world, "vip", "boolean", VIP)
        gender = published(world, "gender", "enum", GENDER, GENDERS)

    return Tags


def stored(tag) -> dict[str, list[int]]:
    rows = TagValueBitmap.objects.filter(computation__tag=tag)
    return {row.value: sorted(bm.deserialize(bytes(row.bitmap))) for row in rows}


def computation(tag) -> TagComputation:
    return TagComputation.objects.get(tag=tag)


def runs(tag, status=None):
    found = TagRun.objects.filter(tag=tag).order_by("started_at", "pk")
    return list(found.filter(status=status) if status else found)


def break_snapshot(tag, definition):
    """A published version whose rule fails at evaluation time (as if the vocabulary changed)."""
    version = TagVersion.objects.get(tag=tag, version=tag.published_version)
    TagVersion.objects.filter(pk=version.pk).update(snapshot={**version.snapshot, "definition": definition})


# ---------------------------------------------------------------------------


def test_results_are_stored_per_value_with_counts(tags):
    report = services.compute_brand(tags.visits.brand, frames=FRAMES, as_of=AS_OF)

    assert {run.tag.code: run.status for run in report.runs} == {
        tags.visits.code: RunStatus.SUCCESS,
        tags.vip.code: RunStatus.SUCCESS,
        tags.gender.code: RunStatus.SUCCESS,
    }
    assert report.population == 14
    assert stored(tags.vip) == {"true": [1, 2, 3], "false": [4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 200]}
    assert stored(tags.gender) == {"female": [1, 3, 5, 7, 9, 11], "male": [2, 4, 6, 8, 10]}
    assert stored(tags.visits) == {"high": [1, 3, 5], "low": [2, 4, 6, 7, 8, 9, 10, 11, 12, 100, 200]}
    counts = dict(TagValueBitmap.objects.filter(computation__tag=tags.gender).values_list("value", "count"))
    assert counts == {"female": 6, "male": 5}

    gender = computation(tags.gender)
    assert gender.version == 1 and gender.value_type == "enum"
    assert gender.population == 14
    assert gender.coverage == pytest.approx(11 / 14)
    assert gender.distribution == {"female": 6, "male": 5}
    assert not gender.is_calculating and gender.last_calculated_at is not None
    assert computation(tags.vip).coverage == pytest.approx(3 / 14)

    numbers = computation(tags.visits).number_series()
    assert numbers.loc[[1, 2, 3, 5, 7, 100]].tolist() == [3.0, 1.0, 5.0, 2.0, 0.0, 1.0]
    assert len(numbers) == 14

    run = runs(tags.gender)[0]
    assert run.tag_version == 1 and run.brand == tags.gender.brand
    assert run.rows_read == sum(len(f) for f in FRAMES)
    assert run.population == 14 and run.coverage == pytest.approx(11 / 14)
    assert run.duration_s >= 0 and run.peak_memory_mb > 0
    assert run.psi is None and run.partitions == 1


def test_a_run_that_raises_leaves_the_previous_result(tags):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    before = {t.code: stored(t) for t in (tags.visits, tags.vip, tags.gender)}

    with mock.patch.object(services, "evaluate_tags", side_effect=MemoryError("out of memory")):
        with pytest.raises(MemoryError):
            services.compute_brand(tags.vip.brand, frames=make_frames(gold=(4, 5)), as_of=AS_OF)

    assert {t.code: stored(t) for t in (tags.visits, tags.vip, tags.gender)} == before
    vip = computation(tags.vip)
    assert not vip.is_calculating
    assert vip.errors_calculating == 1
    assert "out of memory" in vip.last_error and vip.last_error_at is not None
    assert vip.version == 1 and vip.coverage == pytest.approx(3 / 14)
    assert [r.status for r in runs(tags.vip)] == [RunStatus.SUCCESS, RunStatus.FAILED]


def test_a_failing_tag_does_not_stop_the_others(tags):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    before = stored(tags.gender)
    break_snapshot(tags.gender, {"type": "attribute", "attribute": "shoe_size"})

    report = services.compute_brand(tags.vip.brand, frames=make_frames(gold=(9,)), as_of=AS_OF)

    statuses = {run.tag.code: run.status for run in report.runs}
    assert statuses[tags.gender.code] == RunStatus.FAILED
    assert statuses[tags.vip.code] == statuses[tags.visits.code] == RunStatus.SUCCESS
    assert stored(tags.vip)["true"] == [9]
    assert stored(tags.gender) == before  # the previous result stays
    gender = computation(tags.gender)
    assert gender.errors_calculating == 1 and "shoe_size" in gender.last_error
    assert not gender.is_calculating
    assert "shoe_size" in runs(tags.gender, RunStatus.FAILED)[0].error

    break_snapshot(tags.gender, GENDER)  # fixed: the next success resets the counter
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    assert computation(tags.gender).errors_calculating == 0


def test_a_superseded_request_exits_early(tags, django_capture_on_commit_callbacks):
    brand = tags.vip.brand
    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = services.enqueue_compute(brand)
        second = services.enqueue_compute(brand)
    assert second == first + 1 and len(queued) == 2
    assert {computation(t).pending_version for t in (tags.vip, tags.gender, tags.visits)} == {second}

    with mock.patch.object(services, "evaluate_tags", wraps=services.evaluate_tags) as evaluate:
        report = services.compute_brand(brand, pending_version=first, frames=FRAMES, as_of=AS_OF)
    assert not evaluate.called
    assert {run.status for run in report.runs} == {RunStatus.SUPERSEDED}
    assert len(report.runs) == 3
    assert not TagValueBitmap.objects.exists()

    report = services.compute_brand(brand, pending_version=second, frames=FRAMES, as_of=AS_OF)
    assert {run.status for run in report.runs} == {RunStatus.SUCCESS}


def test_a_request_superseded_during_the_run_stores_nothing(tags):
    brand = tags.vip.brand
    pending = services.enqueue_compute(brand)
    real = services.evaluate_tags

    def evaluate_while_someone_requests_again(*args, **kwargs):
        TagComputation.objects.filter(tag=tags.vip).update(pending_version=pending + 1)
        return real(*args, **kwargs)

    with mock.patch.object(services, "evaluate_tags", side_effect=evaluate_while_someone_requests_again):
        services.compute_brand(brand, pending_version=pending, frames=FRAMES, as_of=AS_OF)

    assert [r.status for r in runs(tags.vip)] == [RunStatus.SUPERSEDED]
    assert stored(tags.vip) == {}
    assert [r.status for r in runs(tags.gender)] == [RunStatus.SUCCESS]


def test_partitions_give_the_unpartitioned_result(tags):
    brand = tags.vip.brand
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF, partitions=1)
    whole = {t.code: stored(t) for t in (tags.visits, tags.vip, tags.gender)}
    whole_numbers = computation(tags.visits).number_series()
    whole_state = {
        t.code: (computation(t).coverage, computation(t).distribution) for t in (tags.vip, tags.gender)
    }

    report = services.compute_brand(brand, frames=FRAMES, as_of=AS_OF, partitions=3)

    assert {t.code: stored(t) for t in (tags.visits, tags.vip, tags.gender)} == whole
    pd.testing.assert_series_equal(computation(tags.visits).number_series(), whole_numbers)
    assert {
        t.code: (computation(t).coverage, computation(t).distribution) for t in (tags.vip, tags.gender)
    } == whole_state
    assert report.population == 14
    assert {run.partitions for run in report.runs} == {3}
    assert computation(tags.vip).psi == 0.0  # same distribution as the previous run


def test_split_ranges_cover_every_oneid():
    ranges = services.split_ranges([1, 2, 3, 10, 11, 500, 501, 502, 900], 3)
    assert len(ranges) == 3
    assert ranges[0][0] == 0 and ranges[-1][1] == bm.MAX_ONEID + 1
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert services.split_ranges([5], 4) == [(0, bm.MAX_ONEID + 1)]
    assert services.bounds_ranges(10, 19, 2) == [(0, 15), (15, bm.MAX_ONEID + 1)]


def test_partial_results_survive_json(tags):
    versions = results.published_snapshots([tags.visits, tags.vip])
    specs = {tag_id: results.spec_of(v) for tag_id, v in versions.items()}
    part = services.evaluate_partition(specs, FRAMES, AS_OF)
    again = services.PartialResult.from_json(json.loads(json.dumps(part.to_json())))
    assert again.population == part.population == 14
    for tag_id, outcome in part.outcomes.items():
        assert again.outcomes[tag_id].bitmaps == outcome.bitmaps
    pd.testing.assert_series_equal(
        again.outcomes[tags.visits.pk].numbers, part.outcomes[tags.visits.pk].numbers
    )


def test_psi_and_drift_against_the_previous_run(tags):
    brand = tags.vip.brand
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    assert computation(tags.vip).psi is None and not computation(tags.vip).drift_flag

    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    assert computation(tags.vip).psi == 0.0

    everybody_gold = make_frames(gold=range(1, 13))
    services.compute_brand(brand, frames=everybody_gold, as_of=AS_OF)
    vip = computation(tags.vip)
    expected = bm.psi({"true": 3, "false": 11}, {"true": 12, "false": 2})
    assert vip.psi == pytest.approx(expected, rel=1e-5)
    assert vip.psi > 0.2 and vip.drift_flag
    last = runs(tags.vip)[-1]
    assert last.drift_flag and last.psi == pytest.approx(expected, rel=1e-5)
    assert not computation(tags.gender).drift_flag  # genders did not move


def test_values_for_returns_each_persons_values(tags):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    found = results.values_for(tags.vip.brand, [1, 2, 12, 100, 999])

    assert set(found) == {1, 2, 12, 100, 999}
    one = found[1]
    assert one[tags.vip.code]["value"] is True
    assert one[tags.gender.code]["value"] == "female"
    assert one[tags.visits.code]["value"] == 3.0 and one[tags.visits.code]["bucket"] == "high"
    assert one[tags.vip.code]["version"] == 1
    assert one[tags.vip.code]["computed_at"] == computation(tags.vip).last_calculated_at
    assert found[2][tags.vip.code]["value"] is True and found[2][tags.gender.code]["value"] == "male"
    assert tags.gender.code not in found[12]  # no gender
    assert found[12][tags.vip.code]["value"] is False
    assert found[100][tags.visits.code] | {"computed_at": None} == {
        "value": 1.0,
        "bucket": "low",
        "version": 1,
        "computed_at": None,
    }
    assert found[999] == {}
    only = results.values_for(tags.vip.brand, [1], codes=[tags.gender.code])
    assert set(only[1]) == {tags.gender.code}


def test_values_for_follows_a_new_result(tags):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    assert results.values_for(tags.vip.brand, [9])[9][tags.vip.code]["value"] is False
    services.compute_brand(tags.vip.brand, frames=make_frames(gold=(9,), visits={9: 4}), as_of=AS_OF)
    found = results.values_for(tags.vip.brand, [1, 9])
    assert found[9][tags.vip.code]["value"] is True and found[1][tags.vip.code]["value"] is False
    assert found[9][tags.visits.code]["value"] == 4.0


def test_the_published_snapshot_is_computed_not_draft_edits(tags):
    # An edit that is not published (as if the live row changed) must not be computed.
    Tag.objects.filter(pk=tags.vip.pk).update(
        definition={
            "type": "condition",
            "condition": {"attribute": "member_level", "op": "eq", "value": "silver"},
        }
    )
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    assert stored(tags.vip)["true"] == [1, 2, 3]

    Tag.objects.filter(pk=tags.vip.pk).update(status="draft")
    tag = Tag.objects.get(pk=tags.vip.pk)
    tag.status = "in_review"
    tag.save()
    publish_tag(tag)  # version 2 freezes the silver rule
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    assert stored(tags.vip)["true"] == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert computation(tags.vip).version == 2
    assert [r.tag_version for r in runs(tags.vip)] == [1, 2]


def test_manual_tags_are_not_overwritten_and_composites_read_stored_results(world, tags):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    vip_gold_women = published(
        world,
        "vip_women",
        "boolean",
        {"type": "condition", "condition": {"all": [
            {"tag": tags.vip.code, "op": "eq", "value": True},
            {"tag": tags.gender.code, "op": "eq", "value": "female"},
        ]}},
    )  # fmt: skip
    services.compute_brand(vip_gold_women.brand, tag_ids=[vip_gold_women.pk], frames=FRAMES, as_of=AS_OF)
    assert stored(vip_gold_women)["true"] == [1, 3]
    assert [r.status for r in runs(tags.vip)] == [RunStatus.SUCCESS]  # not recomputed


def test_a_manual_tag_with_nothing_stored_yet_holds_no_value_for_its_readers(world, tags):
    """A manual tag (an upload, an algorithm model's output) published but never filled:
    the tags reading it compute (nobody matches it) instead of failing on an unknown tag."""
    risk = published(world, "risk", "enum", {"type": "manual"}, values=[{"code": "high", "label": "高"}])
    not_risky_vip = published(
        world,
        "not_risky_vip",
        "boolean",
        {"type": "condition", "condition": {"all": [
            {"tag": tags.vip.code, "op": "eq", "value": True},
            {"not": {"tag": risk.code, "op": "eq", "value": "high"}},
        ]}},
    )  # fmt: skip
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    assert [r.status for r in runs(not_risky_vip)] == [RunStatus.SUCCESS]
    assert stored(not_risky_vip)["true"] == stored(tags.vip)["true"] == [1, 2, 3]
    assert not TagRun.objects.filter(tag=risk).exists()  # the engine never computes a manual tag


def test_due_tags_follow_schedule_versions_and_backoff(tags):
    brand = tags.vip.brand
    now = AS_OF  # 10:00 Beijing; the default schedule is 02:00 Beijing
    assert {t.code for t in services.due_tags(brand, now)} == {
        tags.vip.code,
        tags.gender.code,
        tags.visits.code,
    }

    with mock.patch.object(timezone, "now", return_value=now):
        services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    assert services.due_tags(brand, now) == []
    assert services.due_tags(brand, now + dt.timedelta(hours=15)) == []  # 01:00 next day
    assert len(services.due_tags(brand, now + dt.timedelta(hours=16, minutes=1))) == 3  # 02:01

    Tag.objects.filter(pk=tags.gender.pk).update(schedule="*/30 * * * *")
    assert [t.code for t in services.due_tags(brand, now + dt.timedelta(minutes=31))] == [tags.gender.code]

    TagComputation.objects.filter(tag=tags.vip).update(
        errors_calculating=3, last_error_at=now + dt.timedelta(hours=16)
    )
    later = now + dt.timedelta(hours=16, minutes=5)
    assert tags.vip.code not in {t.code for t in services.due_tags(brand, later)}  # backs off 20 minutes
    assert tags.vip.code in {t.code for t in services.due_tags(brand, later + dt.timedelta(minutes=20))}

    TagComputation.objects.filter(tag=tags.visits).update(is_calculating=True)
    assert tags.visits.code not in {t.code for t in services.due_tags(brand, later)}


def test_last_fire_reads_cron_in_beijing_time():
    now = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # Saturday 10:00 in Beijing
    fired = services.last_fire("0 2 * * *", now)
    assert fired == dt.datetime(2026, 11, 28, 2, 0, tzinfo=services.BEIJING)
    assert services.last_fire("30 10 * * *", now).day == 27
    assert services.last_fire("0 9 * * mon", now).date() == dt.date(2026, 11, 23)
    assert services.last_fire("0 0 1 * *", now).date() == dt.date(2026, 11, 1)
    assert services.last_fire("not a cron", now) is None


def test_last_fire_follows_classic_cron():
    now = dt.datetime(2026, 11, 28, 2, 0, 30, tzinfo=dt.UTC)  # Saturday 10:00:30 in Beijing
    assert services.last_fire("0 10 * * *", now) == dt.datetime(2026, 11, 28, 10, 0, tzinfo=services.BEIJING)
    # day of month and day of week both restricted: either matches (not the 1st that is a Saturday)
    assert services.last_fire("0 0 1 * sat", now).date() == dt.date(2026, 11, 28)
    assert services.last_fire("0 0 1 * mon", now).date() == dt.date(2026, 11, 23)
    # one restricted: that one decides
    assert services.last_fire("0 0 */2 * *", now).date() == dt.date(2026, 11, 27)
    assert services.last_fire("0 0 30 2 *", now) is None  # never fires
    assert services.last_fire("0 0 1 1 *", now, horizon_days=30) is None  # not within the horizon
    assert services.last_fire("0 0 * * * *", now) is None  # six fields
    assert services.last_fire("61 0 * * *", now) is None


def test_reset_stuck_gives_up_on_hung_computations(tags):
    started = timezone.now() - dt.timedelta(hours=3)
    TagComputation.objects.create(tag=tags.vip, is_calculating=True, calculation_started_at=started)
    TagComputation.objects.create(tag=tags.gender, is_calculating=True, calculation_started_at=timezone.now())

    assert services.reset_stuck() == 1
    vip = computation(tags.vip)
    assert not vip.is_calculating and vip.errors_calculating == 1 and "reset" in vip.last_error
    assert computation(tags.gender).is_calculating
    failed = runs(tags.vip, RunStatus.FAILED)
    assert len(failed) == 1 and failed[0].duration_s >= 3 * 3600 - 5
    assert services.reset_stuck() == 0


def test_stored_state_and_runs(tags):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    state = computation(tags.vip)
    assert state.tag.code == tags.vip.code and state.version == 1
    assert state.coverage == pytest.approx(3 / 14)
    assert state.distribution == {"true": 3, "false": 11}
    assert [r.status for r in runs(tags.vip)] == [RunStatus.SUCCESS]


def test_numbers_round_trip():
    from tagportal.engine.models import pack_numbers, unpack_numbers

    series = pd.Series([1.5, 2.0], index=pd.Index(np.array([3, 9], dtype="int64"), name="oneid"))
    pd.testing.assert_series_equal(unpack_numbers(pack_numbers(series)), series)
    assert unpack_numbers(None) is None


# ---------------------------------------------------------------------------
# The command


def test_compute_tags_command_prints_a_table(tags, capsys):
    with mock.patch.object(services, "load_frames", return_value=FRAMES):
        call_command(
            "compute_tags", "--brand", tags.vip.brand.code, "--partitions", "2", "--as-of", "2026-11-28"
        )
    out = capsys.readouterr().out
    assert tags.vip.code in out and "success" in out and "21.4%" in out
    assert "true=3" in out and "female=6" in out
    assert computation(tags.gender).distribution == {"female": 6, "male": 5}


def test_compute_tags_command_refuses_unknown_tags(tags):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("compute_tags", "--brand", tags.vip.brand.code, "--tag", "nope")


# ---------------------------------------------------------------------------
# The API


def test_analyst_and_operator_may_not_start_a_computation(world, tags):
    for user in (world.analyst, world.operator):
        response = client_for(user).post(
            "/api/engine/compute/", {"brand": world.own_brand.code}, format="json"
        )
        assert response.status_code == 403, user


def test_steward_starts_a_computation(world, tags, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client_for(world.steward).post(
            "/api/engine/compute/", {"brand": world.own_brand.code}, format="json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["brand"] == world.own_brand.code
    assert body["pending_version"] == computation(tags.vip).pending_version == 1
    assert sorted(body["tags"]) == sorted([tags.vip.code, tags.gender.code, tags.visits.code])
    assert len(queued) == 1


def test_steward_may_not_compute_another_brand(world, tags):
    published(world, "other", "boolean", VIP, brand=world.other_brand)
    response = client_for(world.steward).post(
        "/api/engine/compute/", {"brand": world.other_brand.code}, format="json"
    )
    assert response.status_code == 404


def test_compute_refuses_unpublished_tags(world, tags):
    response = client_for(world.admin).post(
        "/api/engine/compute/", {"brand": world.own_brand.code, "tags": [world.own_tag.code]}, format="json"
    )
    assert response.status_code == 400
    assert world.own_tag.code in response.json()["tags"][0]


def test_other_brands_computations_and_runs_are_invisible(world, tags):
    other = published(world, "other", "boolean", VIP, brand=world.other_brand)
    services.compute_brand(world.own_brand, frames=FRAMES, as_of=AS_OF)
    services.compute_brand(world.other_brand, frames=FRAMES, as_of=AS_OF)

    for user in (world.analyst, world.steward, world.operator):
        client = client_for(user)
        listed = client.get("/api/engine/computations/").json()["results"]
        assert {c["tag"] for c in listed} == {tags.vip.code, tags.gender.code, tags.visits.code}
        other_id = computation(other).pk
        assert client.get(f"/api/engine/computations/{other_id}/").status_code == 404
        assert client.get("/api/engine/runs/", {"brand": world.other_brand.code}).json()["results"] == []
    admin_list = client_for(world.admin).get("/api/engine/computations/").json()["results"]
    assert other.code in {c["tag"] for c in admin_list}
    assert client_for(world.nobody).get("/api/engine/computations/").status_code == 403


def test_computations_endpoint_shows_state_coverage_distribution_and_drift(world, tags):
    services.compute_brand(world.own_brand, frames=FRAMES, as_of=AS_OF)
    client = client_for(world.analyst)
    body = client.get(
        "/api/engine/computations/", {"brand": world.own_brand.code, "tag": tags.vip.code}
    ).json()
    (item,) = body["results"]
    assert item["tag"] == tags.vip.code and item["brand"] == world.own_brand.code
    assert item["version"] == 1 and item["is_calculating"] is False
    assert item["coverage"] == pytest.approx(3 / 14)
    assert item["distribution"] == {"true": 3, "false": 11}
    assert item["drift_flag"] is False and item["psi"] is None

    runs_body = client.get("/api/engine/runs/", {"tag": tags.vip.code, "status": "success"}).json()
    assert [r["status"] for r in runs_body["results"]] == ["success"]
    assert client.get("/api/engine/runs/", {"status": "failed"}).json()["results"] == []


# ---------------------------------------------------------------------------
# The admin


def test_admin_lists_and_compute_now_action(world, tags, client, django_capture_on_commit_callbacks):
    services.compute_brand(world.own_brand, frames=FRAMES, as_of=AS_OF)
    client.force_login(world.steward)
    assert client.get("/admin/engine/tagcomputation/").status_code == 200
    assert client.get(f"/admin/engine/tagcomputation/{computation(tags.vip).pk}/change/").status_code == 200
    assert client.get("/admin/engine/tagrun/", {"status__exact": "success"}).status_code == 200
    before = computation(tags.vip).pending_version
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(
            "/admin/engine/tagcomputation/",
            {"action": "compute_now", "_selected_action": [computation(tags.vip).pk]},
        )
    assert response.status_code == 302
    assert computation(tags.vip).pending_version == before + 1
    assert len(queued) == 1

    client.force_login(world.analyst)
    page = client.get("/admin/engine/tagcomputation/")
    assert page.status_code == 200 and b"compute_now" not in page.content


# ---------------------------------------------------------------------------
# With the profiles app's loader (the brand's people in the database)


def test_compute_brand_reads_the_brands_people_through_profiles(world, tags):
    from tagportal.profiles.models import Customer, Event

    now = timezone.now()
    people = {
        oneid: Customer.objects.create(
            brand=world.own_brand,
            oneid=oneid,
            attributes={"member_level": "gold" if oneid == 7 else "silver", "gender": "male"},
        )
        for oneid in (5, 6, 7)
    }
    for k in range(3):
        Event.objects.create(
            brand=world.own_brand,
            customer=people[6],
            client_id=f"visit-{k}",
            type="store_visit",
            time=now - dt.timedelta(days=k + 1),
        )
    merged = Customer.objects.create(
        brand=world.own_brand, oneid=8, merged_into=people[5]
    )  # not a person any more
    assert merged.merged_into_id

    report = services.compute_brand(world.own_brand, partitions=2)

    assert {run.status for run in report.runs} == {RunStatus.SUCCESS}
    assert report.population == 3
    assert stored(tags.vip) == {"true": [7], "false": [5, 6]}
    assert stored(tags.visits) == {"high": [6], "low": [5, 7]}
    assert stored(tags.gender) == {"female": [], "male": [5, 6, 7]}
