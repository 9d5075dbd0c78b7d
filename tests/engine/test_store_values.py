"""Values computed outside the engine (a model's scores) stored as a tag's current
result: read back through the results API like a computed result, refused whole when
the tag cannot hold them, and announced to readers."""

from __future__ import annotations

import pandas as pd
import pytest

from tagportal.engine import results
from tagportal.engine.models import RunStatus, TagComputation, TagRun, TagValueBitmap
from tagportal.engine.signals import results_updated
from tests.engine.test_compute import BUCKETS, GENDERS, published

MANUAL = {"type": "manual"}
#: A value each tag holds before a refused write.
FIRST = {"level": "female", "score": 1.0, "flag": True}


@pytest.fixture
def tags(world):
    class Tags:
        score = published(world, "score", "number", MANUAL, BUCKETS)
        flag = published(world, "flag", "boolean", MANUAL)
        level = published(world, "level", "enum", MANUAL, GENDERS)

    results.BITMAPS.clear()
    results.NUMBERS.clear()
    return Tags


def stored():
    return TagComputation.objects.count(), TagRun.objects.count(), TagValueBitmap.objects.count()


def test_numbers_are_stored_with_their_buckets_and_read_back(tags):
    run = results.store_values(tags.score, pd.Series([0.5, 3.0, 1.0], index=[3, 1, 2]), population=10)
    assert run.status == RunStatus.SUCCESS
    assert run.tag_version == 1
    assert run.coverage == pytest.approx(0.3)
    assert run.distribution == {"low": 2, "high": 1}
    values = results.values_for(tags.score.brand, [1, 2, 3, 4], [tags.score.code])
    assert values[1][tags.score.code]["value"] == 3.0
    assert values[1][tags.score.code]["bucket"] == "high"
    assert values[3][tags.score.code] == {
        "value": 0.5,
        "bucket": "low",
        "version": 1,
        "computed_at": values[3][tags.score.code]["computed_at"],
    }
    assert values[4] == {}
    computation_id, stamp, _version = results.result_stamps([tags.score.pk])[tags.score.pk]
    numbers = results.result_numbers({computation_id: stamp})[computation_id]
    assert numbers.to_dict() == {1: 3.0, 2: 1.0, 3: 0.5}


def test_enum_and_boolean_values_become_bitmaps(tags):
    results.store_values(tags.level, pd.Series(["female", "male", None], index=[1, 2, 3]), population=3)
    results.store_values(tags.flag, pd.Series([True, False], index=[5, 6]))
    stamps = results.result_stamps([tags.level.pk, tags.flag.pk])
    level_pk, level_at, _v = stamps[tags.level.pk]
    flag_pk, flag_at, _v = stamps[tags.flag.pk]
    maps = results.result_bitmaps({level_pk: level_at, flag_pk: flag_at})
    assert {k: sorted(v) for k, v in maps[level_pk].items()} == {"female": [1], "male": [2]}
    assert {k: sorted(v) for k, v in maps[flag_pk].items()} == {"true": [5], "false": [6]}
    state = results.result_states([tags.level.pk])[tags.level.pk]
    assert state["coverage"] == pytest.approx(2 / 3)
    assert results.values_for(tags.flag.brand, [5])[5][tags.flag.code]["value"] is True


def test_a_second_write_replaces_the_first_and_measures_drift(tags):
    results.store_values(tags.level, pd.Series(["female"] * 10, index=range(10)))
    run = results.store_values(tags.level, pd.Series(["male"] * 10, index=range(10)))
    assert run.psi is not None and run.psi > 0.2
    assert run.drift_flag
    values = results.values_for(tags.level.brand, [0], [tags.level.code])
    assert values[0][tags.level.code]["value"] == "male"
    assert TagRun.objects.filter(tag=tags.level, status=RunStatus.SUCCESS).count() == 2


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("level", pd.Series(["female", "other"], index=[1, 2]), "not one of the tag's values"),
        ("score", pd.Series([1.0, "lots"], index=[1, 2]), "not a finite number"),
        ("score", pd.Series([1.0, float("inf")], index=[1, 2]), "not a finite number"),
        ("flag", pd.Series([True, "yes"], index=[1, 2]), "not yes or no"),
        ("level", pd.Series(["female", "male"], index=[1, 1]), "more than one value"),
        ("level", pd.Series(["female"], index=[-1]), "OneIDs must be between"),
    ],
)
def test_values_the_tag_cannot_hold_are_refused_whole(tags, name, values, message):
    tag = getattr(tags, name)
    results.store_values(tag, pd.Series([FIRST[name]], index=[1]))
    before = stored()
    kept = results.values_for(tag.brand, [1], [tag.code])
    with pytest.raises(results.ValuesRefused, match=message):
        results.store_values(tag, values)
    assert stored() == before
    assert results.values_for(tag.brand, [1], [tag.code]) == kept


def test_a_tag_not_published_is_refused(world):
    from tests.factories import TagFactory

    draft = TagFactory(brand=world.own_brand, category=world.category, code="yimei_visit_draft")
    with pytest.raises(results.ValuesRefused, match="not published"):
        results.store_values(draft, pd.Series([1.0], index=[1]))
    assert not TagComputation.objects.filter(tag=draft).exists()


def test_readers_are_told_once_the_values_are_committed(tags, django_capture_on_commit_callbacks):
    heard = []

    def listener(sender, brand_id, tag_ids, **kwargs):
        heard.append((brand_id, tag_ids))

    results_updated.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            results.store_values(tags.flag, pd.Series([True], index=[1]))
            assert heard == []
        assert heard == [(tags.flag.brand_id, [tags.flag.pk])]
    finally:
        results_updated.disconnect(listener)


def test_manual_definitions_are_left_out_of_batch_computes(tags):
    from tagportal.engine import services

    report = services.compute_brand(tags.score.brand, frames=({"oneid": []}, None, None))
    assert tags.score.pk not in {run.tag_id for run in report.runs}
