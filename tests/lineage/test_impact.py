"""Impact analysis: what depends on a source, a field or a tag, transitively."""

import pytest

from tagportal.lineage import services

from .factories import DataFieldFactory, DataSourceFactory, all_of_tag, metric_tag, reading_tag


@pytest.fixture
def chain(world):
    """source → field → t1 → t2 → t3, and t4 reading t2 and t3 (a diamond)."""

    class Chain:
        pass

    c = Chain()
    c.source = DataSourceFactory(code="jd", kind="jd", business_line=world.own_line)
    c.field = DataFieldFactory(
        source=c.source, name="sku_discount", data_type="number", maps_to="orders.discount"
    )
    c.spare = DataFieldFactory(source=c.source, name="unused", maps_to="")
    c.t1 = metric_tag(world.own_brand, world.category, "yimei_visit_t1", "orders", "discount")
    c.t2 = reading_tag(world.own_brand, world.category, "yimei_visit_t2", c.t1)
    c.t3 = reading_tag(world.own_brand, world.category, "yimei_visit_t3", c.t2)
    c.t4 = all_of_tag(world.own_brand, world.category, "yimei_visit_t4", c.t2, c.t3)
    return c


@pytest.mark.django_db
def test_impact_of_a_source(chain):
    found = services.impact(chain.source)
    assert set(found.fields) == {chain.field, chain.spare}
    assert found.sources == []
    assert [t.code for t in found.tags] == [
        "yimei_visit_t1",
        "yimei_visit_t2",
        "yimei_visit_t3",
        "yimei_visit_t4",
    ]
    assert found.depth == {chain.t1.pk: 1, chain.t2.pk: 2, chain.t3.pk: 3, chain.t4.pk: 3}


@pytest.mark.django_db
def test_impact_of_a_field(chain):
    found = services.impact(chain.field)
    assert found.fields == [] and found.sources == []
    assert found.depth == {chain.t1.pk: 1, chain.t2.pk: 2, chain.t3.pk: 3, chain.t4.pk: 3}
    assert services.impact(chain.spare).tags == []


@pytest.mark.django_db
def test_impact_of_a_tag_lists_each_dependent_once(chain):
    found = services.impact(chain.t1)
    assert [t.pk for t in found.tags] == [chain.t2.pk, chain.t3.pk, chain.t4.pk]
    assert found.depth == {chain.t2.pk: 1, chain.t3.pk: 2, chain.t4.pk: 2}
    assert chain.t1 not in found.tags
    assert services.tag_dependents(chain.t2) == [chain.t3, chain.t4]
    assert services.tag_dependents(chain.t3) == [chain.t4]
    assert services.tag_dependents(chain.t4) == []


@pytest.mark.django_db
def test_upstream_of_a_tag(chain):
    found = services.upstream(chain.t4)
    assert found.direction == "upstream"
    assert {t.code for t in found.tags} == {"yimei_visit_t1", "yimei_visit_t2", "yimei_visit_t3"}
    assert found.depth == {chain.t2.pk: 1, chain.t3.pk: 1, chain.t1.pk: 2}
    assert found.fields == [chain.field]
    assert found.sources == [chain.source]


@pytest.mark.django_db
def test_impact_of_something_nothing_reads(world):
    lonely = DataSourceFactory(code="lonely")
    assert not services.impact(lonely)
    assert services.tag_dependents(world.own_tag) == []


@pytest.mark.django_db
def test_impact_queries_do_not_grow_with_the_graph(chain, world, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        services.impact(chain.source)
    more = [reading_tag(world.own_brand, world.category, f"yimei_visit_x{i}", chain.t3) for i in range(5)]
    with django_assert_max_num_queries(6):
        found = services.impact(chain.source)
    assert set(more) <= set(found.tags)
    with django_assert_max_num_queries(2):
        services.tag_dependents(chain.t1)
