"""Inputs derived from tag definitions, kept in sync whenever a tag or a field is saved."""

import pytest
from django.core.exceptions import ValidationError

from tagportal.catalog.models import Tag
from tagportal.catalog.services import update_tag
from tagportal.lineage import services
from tagportal.lineage.models import InputOrigin, TagInput

from ..conftest import client_for
from ..factories import TagFactory
from .factories import DataFieldFactory, DataSourceFactory, all_of_tag, metric_tag, reading_tag


def inputs(tag):
    rows = TagInput.objects.filter(tag=tag)
    return {(r.field_id and ("field", r.field_id)) or ("tag", r.upstream_id): r.origin for r in rows}


def test_definition_reads():
    reads = services.definition_reads(
        {
            "type": "condition",
            "condition": {
                "all": [
                    {"attribute": "member_level", "op": "eq", "value": "gold"},
                    {"tag": "yimei_visit_a", "op": "gte", "value": 1},
                    {
                        "metric": {
                            "agg": "sum",
                            "source": "orders",
                            "field": "amount",
                            "where": [{"field": "properties.coupon", "op": "is_set"}],
                        },
                        "op": "gt",
                        "value": 100,
                    },
                    {
                        "metric": {
                            "agg": "count",
                            "source": "events",
                            "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
                        },
                        "op": "gte",
                        "value": 1,
                    },
                ]
            },
        }
    )
    assert reads.tags == {"yimei_visit_a"}
    assert reads.fields == {
        "profile.member_level",
        "orders.amount",
        "orders.properties.coupon",
        "events.type",
    }


def test_definition_reads_of_attribute_and_empty_definitions():
    assert services.definition_reads({"type": "attribute", "attribute": "skin_type"}).fields == {
        "profile.skin_type"
    }
    assert services.definition_reads({}).fields == set()
    assert services.definition_reads({"type": "manual"}).tags == set()


@pytest.mark.django_db
def test_a_composite_tag_reading_two_tags_gets_two_tag_inputs(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = metric_tag(world.own_brand, world.category, "yimei_visit_b", "orders", "quantity")
    both = all_of_tag(world.own_brand, world.category, "yimei_visit_both", a, b)
    rows = TagInput.objects.filter(tag=both)
    assert {r.upstream_id for r in rows} == {a.pk, b.pk}
    assert {r.origin for r in rows} == {InputOrigin.DEFINITION}
    assert all(r.field_id is None for r in rows)


@pytest.mark.django_db
def test_a_metric_on_orders_amount_links_every_field_feeding_it(world, lin):
    second = DataFieldFactory(source=lin.crm, name="order_total", data_type="number", maps_to="orders.amount")
    tag = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    assert inputs(tag) == {
        ("field", lin.pos_amount.pk): InputOrigin.DEFINITION,
        ("field", second.pk): InputOrigin.DEFINITION,
    }
    # The other business line's Tmall field also feeds orders.amount, but not this tag.
    assert not TagInput.objects.filter(tag=tag, field=lin.tmall_amount).exists()


@pytest.mark.django_db
def test_fields_added_or_remapped_later_are_linked_and_unlinked(world, lin):
    tag = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    late = DataFieldFactory(source=lin.crm, name="late_amount", maps_to="orders.amount")
    assert TagInput.objects.filter(tag=tag, field=late, origin=InputOrigin.DEFINITION).exists()
    late.maps_to = "orders.discount"
    late.save()
    assert not TagInput.objects.filter(tag=tag, field=late).exists()


@pytest.mark.django_db
def test_a_source_moving_business_line_relinks_its_fields(world, lin):
    tag = metric_tag(world.other_brand, world.category, "shipin_visit_spend", "orders", "amount")
    assert TagInput.objects.filter(tag=tag, field=lin.tmall_amount).exists()
    assert not TagInput.objects.filter(tag=tag, field=lin.pos_amount).exists()
    pos = type(lin.pos).objects.get(pk=lin.pos.pk)
    pos.business_line = world.other_line
    pos.save()
    assert TagInput.objects.filter(tag=tag, field=lin.pos_amount).exists()
    assert not TagInput.objects.filter(tag__brand=world.own_brand, field=lin.pos_amount).exists()


@pytest.mark.django_db
def test_profile_attributes_and_properties_link_their_fields(world, lin):
    project = DataFieldFactory(source=lin.pos, name="project", maps_to="events.properties.project")
    tag = TagFactory(
        brand=world.own_brand,
        category=world.category,
        code="yimei_visit_gold_project",
        value_type="boolean",
        values=[],
        definition={
            "type": "condition",
            "condition": {
                "all": [
                    {"attribute": "member_level", "op": "eq", "value": "gold"},
                    {
                        "metric": {
                            "agg": "count",
                            "source": "events",
                            "where": [{"field": "properties.project", "op": "eq", "value": "水光针"}],
                        },
                        "op": "gte",
                        "value": 1,
                    },
                ]
            },
        },
    )
    assert set(inputs(tag)) == {("field", lin.member_level.pk), ("field", project.pk)}


@pytest.mark.django_db
def test_editing_the_definition_resyncs_and_keeps_declared_inputs(world, lin):
    tag = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    services.declare_inputs(world.steward, tag, fields=[lin.points.pk])
    update_tag(
        world.steward,
        tag,
        definition={"type": "metric", "metric": {"agg": "sum", "source": "orders", "field": "discount"}},
    )
    assert inputs(tag) == {("field", lin.points.pk): InputOrigin.DECLARED}


@pytest.mark.django_db
def test_a_reader_saved_before_its_upstream_is_linked_when_the_upstream_appears(world):
    reader = TagFactory.build(
        brand=world.own_brand,
        business_line=world.own_line,
        category=world.category,
        code="yimei_visit_reader",
        kind="composite",
        definition={"type": "metric", "metric": {"tag": "yimei_visit_later"}},
    )
    reader.save()  # saved without validation: the upstream does not exist yet
    assert not TagInput.objects.filter(tag=reader).exists()
    later = metric_tag(world.own_brand, world.category, "yimei_visit_later", "orders", "amount")
    assert TagInput.objects.filter(tag=reader, upstream=later, origin=InputOrigin.DEFINITION).exists()


@pytest.mark.django_db
def test_a_definition_making_a_cycle_is_refused_and_nothing_is_saved(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    before = set(TagInput.objects.values_list("pk", "tag_id", "upstream_id"))
    with pytest.raises(ValidationError) as info:
        update_tag(world.steward, a, definition={"type": "metric", "metric": {"tag": b.code}})
    message = info.value.message_dict["definition"][0]
    assert "yimei_visit_a → yimei_visit_b → yimei_visit_a" in message
    a.refresh_from_db()
    assert a.definition["metric"]["agg"] == "sum"
    assert set(TagInput.objects.values_list("pk", "tag_id", "upstream_id")) == before


@pytest.mark.django_db
def test_the_tag_api_answers_400_for_a_definition_cycle(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    response = client_for(world.steward).patch(
        f"/api/catalog/tags/{a.pk}/",
        {"definition": {"type": "metric", "metric": {"tag": b.code}}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "yimei_visit_a → yimei_visit_b → yimei_visit_a" in response.json()["definition"][0]
    a.refresh_from_db()
    assert "tag" not in a.definition["metric"]


@pytest.mark.django_db
def test_check_definition_cycle_for_forms(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    a.definition = {"type": "metric", "metric": {"tag": "yimei_visit_b"}}
    with pytest.raises(ValidationError) as info:
        services.check_definition_cycle(a)
    assert "cycle" in info.value.message_dict["definition"][0]


@pytest.mark.django_db
def test_deleting_a_tag_other_tags_read_is_refused(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    response = client_for(world.admin).delete(f"/api/catalog/tags/{a.pk}/")
    assert response.status_code == 409
    assert Tag.objects.filter(pk=a.pk).exists()
    b.delete()  # the reader may go; then the upstream may too
    a.delete()


@pytest.mark.django_db
def test_sync_all_rebuilds_missing_inputs_and_is_idempotent(world, lin):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    TagInput.objects.all().delete()
    summary = services.sync_all()
    assert summary.problems == []
    assert summary.tags == Tag.objects.count()
    assert TagInput.objects.filter(tag=b, upstream=a).exists()
    assert TagInput.objects.filter(tag=a, field=lin.pos_amount).exists()
    assert TagInput.objects.filter(tag=world.own_tag, field=lin.visit_type).exists()
    again = services.sync_all()
    assert (again.result.created, again.result.deleted, again.result.changed) == (0, 0, 0)


@pytest.mark.django_db
def test_sync_all_reports_cycles_without_stopping(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    Tag.objects.filter(pk=a.pk).update(definition={"type": "metric", "metric": {"tag": b.code}})
    summary = services.sync_all()
    assert len(summary.problems) == 1 and "cycle" in summary.problems[0]
    assert TagInput.objects.filter(tag=b, upstream=a).exists()
    assert not TagInput.objects.filter(tag=a, upstream=b).exists()


@pytest.mark.django_db
def test_unmapped_source_fields_link_nothing(world):
    source = DataSourceFactory(code="wecom", kind="wecom")
    field = DataFieldFactory(source=source, name="external_userid", maps_to="")
    assert not TagInput.objects.filter(field=field).exists()
