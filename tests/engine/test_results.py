"""The engine's public results API: stored results read through the one cache, which
follows a recomputation; specs evaluated now without storing anything, their coverage
computed as the stored coverage is; the bulk reads of reports."""

from __future__ import annotations

import datetime as dt

import pytest

from tagportal.engine import results, services
from tagportal.engine.models import TagComputation, TagRun, TagValueBitmap
from tests.engine.test_compute import (
    AS_OF,
    BUCKETS,
    FRAMES,
    GENDER,
    GENDERS,
    VIP,
    VISITS,
    make_frames,
    published,
)


@pytest.fixture
def tags(world):
    class Tags:
        visits = published(world, "visits", "number", VISITS, BUCKETS)
        vip = published(world, "vip", "boolean", VIP)
        gender = published(world, "gender", "enum", GENDER, GENDERS)

    results.BITMAPS.clear()
    results.NUMBERS.clear()
    return Tags


def stored_state():
    return TagComputation.objects.count(), TagRun.objects.count(), TagValueBitmap.objects.count()


def test_result_bitmaps_come_from_the_cache_until_the_tag_is_recomputed(tags, django_assert_num_queries):
    brand = tags.vip.brand
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    computation_id, stamp, version = results.result_stamps([tags.vip.pk, tags.gender.pk])[tags.vip.pk]
    assert version == 1
    first = results.result_bitmaps({computation_id: stamp})[computation_id]
    assert sorted(first["true"]) == [1, 2, 3]
    with django_assert_num_queries(1):  # the rows; their bitmaps are cached
        again = results.result_bitmaps({computation_id: stamp})[computation_id]
    assert again["true"] is first["true"]

    services.compute_brand(brand, frames=make_frames(gold=(9,)), as_of=AS_OF)
    computation_id, newer, _version = results.result_stamps([tags.vip.pk])[tags.vip.pk]
    assert newer != stamp
    assert sorted(results.result_bitmaps({computation_id: newer})[computation_id]["true"]) == [9]
    assert results.newest_result_at(brand.pk) == newer


def test_result_numbers_follow_a_recomputation(tags):
    brand = tags.visits.brand
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    computation_id, stamp, _version = results.result_stamps([tags.visits.pk])[tags.visits.pk]
    assert results.result_numbers({computation_id: stamp})[computation_id].to_dict()[1] == 3.0
    services.compute_brand(brand, frames=make_frames(visits={1: 4}), as_of=AS_OF)
    computation_id, newer, _version = results.result_stamps([tags.visits.pk])[tags.visits.pk]
    assert results.result_numbers({computation_id: newer})[computation_id].to_dict()[1] == 4.0


def test_specs_are_evaluated_without_storing_and_cover_as_a_stored_result(tags):
    brand = tags.vip.brand
    everything = [tags.visits, tags.vip, tags.gender]
    specs = results.published_specs(everything)
    assert {spec.code for spec in specs.values()} == {tag.code for tag in everything}
    before = stored_state()
    part = results.evaluate_specs(brand, specs, frames=FRAMES, as_of=AS_OF)
    assert stored_state() == before  # no result, no run, no computation
    vip = part.outcomes[tags.vip.pk]
    assert sorted(vip.bitmaps["true"]) == [1, 2, 3]
    assert vip.distribution == {"true": 3, "false": 11}

    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    states = results.result_states([tag.pk for tag in everything])
    for tag in everything:
        outcome = part.outcomes[tag.pk]
        assert outcome.coverage(specs[tag.pk].value_type, part.population) == pytest.approx(
            states[tag.pk]["coverage"]
        )
        assert outcome.distribution == states[tag.pk]["distribution"]
    assert states[tags.vip.pk]["coverage"] == pytest.approx(3 / 14)


def test_bulk_reads_for_reports(tags):
    brand = tags.vip.brand
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    ids = [tags.vip.pk, tags.gender.pk]
    counts = results.value_counts(ids)
    assert counts[tags.vip.pk] == {"false": 11, "true": 3}
    assert counts[tags.gender.pk] == {"female": 6, "male": 5}
    maps = results.value_bitmaps(ids, true_only={tags.vip.pk})
    assert set(maps[tags.vip.pk]) == {"true"}  # who holds a yes/no tag
    assert sorted(maps[tags.gender.pk]["male"]) == [2, 4, 6, 8, 10]

    runs = TagRun.objects.filter(tag=tags.vip).order_by("started_at")
    first, last = runs.first().started_at, runs.last().started_at
    expected = sum(run.evaluate_s for run in runs) / 2
    assert results.mean_run_seconds(ids, first, last + dt.timedelta(seconds=1))[tags.vip.pk] == pytest.approx(
        expected
    )
    assert results.mean_run_seconds(ids, first, first) == {}
