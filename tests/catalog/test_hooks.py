"""The dictionary learns what higher apps know about its tags through hooks they register
and through the engine's reverse relation, never by importing them."""

import pytest

from tagportal.catalog import hooks
from tagportal.catalog.models import Tag
from tagportal.lineage import services as lineage


@pytest.fixture
def clean_hooks(monkeypatch):
    """Empty registries for the test, the app's registrations back afterwards."""
    monkeypatch.setattr(hooks, "_stale_flags", [])
    monkeypatch.setattr(hooks, "_source_names", [])


def test_lineage_registers_its_judges_when_it_starts():
    assert lineage.stale_tag_ids in hooks._stale_flags
    assert lineage.tag_source_names in hooks._source_names


def test_without_a_registered_judge_nothing_is_stale_and_no_source_is_named(clean_hooks):
    assert hooks.stale_tag_ids() == set()
    assert hooks.source_names(None, []) == {}


def test_registered_judges_are_combined_once_each(clean_hooks):
    def first():
        return [1, 2]

    def second():
        return {2, 3}

    for fn in (first, second, first):
        hooks.register_stale_flags(fn)
    hooks.register_source_names(lambda user, tag_ids: {1: ["CRM"]})
    hooks.register_source_names(lambda user, tag_ids: {1: ["POS"], 2: ["JD"]})
    assert hooks.stale_tag_ids() == {1, 2, 3}
    assert hooks.source_names(None, [1, 2]) == {1: ["CRM", "POS"], 2: ["JD"]}


@pytest.mark.django_db
def test_computation_state_comes_through_the_reverse_relation(world, django_assert_num_queries):
    from tagportal.engine.models import TagComputation  # the test may know the engine; catalog does not

    TagComputation.objects.create(tag=world.own_tag, coverage=0.5)
    with django_assert_num_queries(1):
        tags = {tag.pk: tag for tag in Tag.objects.with_computation()}
        assert hooks.computation_of(tags[world.own_tag.pk]).coverage == 0.5
        assert hooks.computation_of(tags[world.other_tag.pk]) is None
    assert Tag.related_model(hooks.COMPUTATION) is TagComputation
    assert Tag.related_model("no_such_relation") is None
