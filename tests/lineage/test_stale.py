"""Freshness: a source past its refresh SLA makes every tag depending on it stale."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from tagportal.catalog.models import Tag
from tagportal.lineage import services
from tagportal.lineage.models import DataSource

from .conftest import NOW, UTC
from .factories import DataSourceFactory, metric_tag, reading_tag


def hours_ago(hours):
    return NOW - dt.timedelta(hours=hours)


@pytest.fixture
def loaded(lin):
    """CRM loaded 25 h ago (SLA 24 h: stale), POS 2 h ago (fresh), Tmall never (stale)."""
    DataSource.objects.filter(pk=lin.crm.pk).update(last_loaded_at=hours_ago(25))
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=hours_ago(2))
    return lin


@pytest.fixture
def tags(world, loaded):
    class Tags:
        pass

    t = Tags()
    t.points = metric_tag(world.own_brand, world.category, "yimei_visit_points", "orders", "amount")
    t.points.definition = {"type": "metric", "metric": {"attribute": "points"}}
    t.points.save()  # reads profile.points: the CRM
    t.spend = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")  # POS
    t.derived = reading_tag(world.own_brand, world.category, "yimei_visit_derived", t.points)
    t.deeper = reading_tag(world.own_brand, world.category, "yimei_visit_deeper", t.derived)
    return t


@pytest.mark.django_db
def test_stale_sources(loaded):
    assert set(services.stale_sources(now=NOW)) == {loaded.crm, loaded.tmall}
    assert set(services.stale_sources(now=hours_ago(2))) == {loaded.tmall}  # 23 h after the CRM load
    DataSource.objects.filter(pk=loaded.tmall.pk).update(is_active=False)
    assert set(services.stale_sources(now=NOW)) == {loaded.crm}


@pytest.mark.django_db
def test_stale_sources_with_frozen_time(loaded, now):
    assert set(services.stale_sources()) == {loaded.crm, loaded.tmall}
    crm = DataSource.objects.get(pk=loaded.crm.pk)
    assert crm.is_stale() and not DataSource.objects.get(pk=loaded.pos.pk).is_stale()


@pytest.mark.django_db
def test_stale_tags_directly_and_transitively(world, tags, now):
    stale = services.stale_tag_ids()
    assert stale == {tags.points.pk, tags.derived.pk, tags.deeper.pk}
    assert tags.spend.pk not in stale and world.own_tag.pk not in stale
    only = services.stale_tag_ids(Tag.objects.filter(pk__in=[tags.deeper.pk, tags.spend.pk]))
    assert only == {tags.deeper.pk}


@pytest.mark.django_db
def test_stale_tag_ids_takes_a_constant_number_of_queries(world, tags, now, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        services.stale_tag_ids(Tag.objects.filter(brand=world.own_brand))
    for i in range(5):
        reading_tag(world.own_brand, world.category, f"yimei_visit_more{i}", tags.deeper)
    with django_assert_max_num_queries(4):
        assert len(services.stale_tag_ids(Tag.objects.filter(brand=world.own_brand))) == 8


@pytest.mark.django_db
def test_nothing_is_stale_when_sources_are_fresh(world, tags, django_assert_max_num_queries):
    later = NOW - dt.timedelta(hours=30)  # the CRM load was 5 h before this
    DataSource.objects.filter(code="shipin-tmall").update(is_active=False)  # never loaded
    with django_assert_max_num_queries(1):
        assert services.stale_tag_ids(now=later) == set()


@pytest.mark.django_db
def test_stale_reasons_name_the_source_its_load_in_beijing_time_and_sla(world, tags, now):
    crm = DataSource.objects.get(pk=tags.points.lineage_inputs.get().field.source_id)
    crm.last_loaded_at = dt.datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    crm.save()
    reasons = services.stale_reasons([tags.points.pk, tags.deeper.pk, tags.spend.pk])
    expected = "CRM 会员数据 last loaded 2026-11-20 10:00 (Beijing time), SLA 24 h"
    assert reasons == {tags.points.pk: [expected], tags.deeper.pk: [expected]}
    never = DataSourceFactory(code="never", name="抖音小店")
    assert services.stale_reason(never) == "抖音小店 has never been loaded, SLA 24 h"


@pytest.mark.django_db
def test_record_load(loaded, now):
    crm = services.record_load(loaded.crm)
    assert crm.last_loaded_at == NOW and not crm.is_stale()
    assert crm.history.order_by("-history_id").first().history_change_reason == "Successful load recorded"
    services.record_load(crm, at=hours_ago(5))  # older than the one recorded: no change
    crm.refresh_from_db()
    assert crm.last_loaded_at == NOW
    with pytest.raises(ValidationError):
        services.record_load(crm, at=NOW + dt.timedelta(hours=1))
