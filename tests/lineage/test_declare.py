"""Declaring what a tag reads: validated, atomic, never a cycle."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tagportal.lineage import services
from tagportal.lineage.models import InputOrigin, TagInput

from ..factories import TagFactory
from .factories import DataFieldFactory, metric_tag, reading_tag


def snapshot():
    return set(TagInput.objects.values_list("pk", "tag_id", "field_id", "upstream_id", "origin"))


@pytest.mark.django_db
def test_declare_fields_and_tags(world, lin):
    rfm = TagFactory(
        brand=world.own_brand,
        category=world.category,
        code="yimei_visit_rfm",
        kind="algorithm",
        value_type="enum",
        values=[{"code": "vip", "label": "重要价值"}],
        definition={"type": "manual"},
    )
    result = services.declare_inputs(
        world.steward, rfm, fields=[lin.points.pk, "yimei-pos.amount"], tags=[world.own_tag.code]
    )
    assert {(r.field_id, r.upstream_id, r.origin) for r in result.inputs} == {
        (lin.points.pk, None, InputOrigin.DECLARED),
        (lin.pos_amount.pk, None, InputOrigin.DECLARED),
        (None, world.own_tag.pk, InputOrigin.DECLARED),
    }
    assert result.uncovered == []
    # Declaring again replaces the declaration.
    services.declare_inputs(world.steward, rfm, fields=[lin.points])
    assert set(TagInput.objects.filter(tag=rfm).values_list("field_id", "upstream_id")) == {
        (lin.points.pk, None)
    }
    assert rfm.lineage_inputs.first().history.count() >= 1


@pytest.mark.django_db
def test_declaring_keeps_what_the_definition_reads(world, lin):
    tag = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    services.declare_inputs(world.steward, tag, fields=[lin.pos_amount.pk, lin.points.pk])
    rows = {r.field_id: r.origin for r in TagInput.objects.filter(tag=tag)}
    assert rows == {lin.pos_amount.pk: InputOrigin.DECLARED, lin.points.pk: InputOrigin.DECLARED}
    services.declare_inputs(world.steward, tag)  # withdraw the declaration: the derived input stays
    rows = {r.field_id: r.origin for r in TagInput.objects.filter(tag=tag)}
    assert rows == {lin.pos_amount.pk: InputOrigin.DEFINITION}


@pytest.mark.django_db
def test_a_cycle_is_refused_naming_it_and_nothing_is_saved(world, lin):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    before = snapshot()
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(world.steward, a, fields=[lin.points.pk], tags=[b.code])
    message = info.value.message_dict["tags"][0]
    assert "lineage cycle" in message
    assert "yimei_visit_a → yimei_visit_b → yimei_visit_a" in message
    assert snapshot() == before


@pytest.mark.django_db
def test_a_tag_reading_itself_is_a_cycle(world):
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(world.steward, world.own_tag, tags=[world.own_tag.pk])
    assert f"{world.own_tag.code} → {world.own_tag.code}" in info.value.message_dict["tags"][0]


@pytest.mark.django_db
def test_a_longer_cycle_names_every_step(world):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    c = reading_tag(world.own_brand, world.category, "yimei_visit_c", b)
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(world.steward, a, tags=[c.pk])
    assert (
        "yimei_visit_a → yimei_visit_b → yimei_visit_c → yimei_visit_a" in info.value.message_dict["tags"][0]
    )


@pytest.mark.django_db
def test_unknown_fields_and_tags_are_refused(world, lin):
    before = snapshot()
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(
            world.steward,
            world.own_tag,
            fields=[lin.points.pk, 987654, "crm.shoe_size"],
            tags=["no_such_tag"],
        )
    errors = info.value.message_dict
    assert "987654" in errors["fields"][0] and "crm.shoe_size" in errors["fields"][0]
    assert "no_such_tag" in errors["tags"][0]
    assert snapshot() == before


@pytest.mark.django_db
def test_invisible_and_foreign_inputs_are_refused(world, lin):
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(world.steward, world.own_tag, fields=[lin.tmall_amount.pk])
    assert str(lin.tmall_amount.pk) in info.value.message_dict["fields"][0]  # invisible: unknown
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(world.admin, world.own_tag, fields=[lin.tmall_amount.pk])
    assert "own business line" in info.value.message_dict["fields"][0]
    with pytest.raises(ValidationError):
        services.declare_inputs(world.admin, world.own_tag, tags=[world.other_tag.pk])  # another brand


@pytest.mark.django_db
def test_only_users_who_may_change_the_tag_declare(world, lin):
    with pytest.raises(PermissionDenied):
        services.declare_inputs(world.analyst, world.own_tag, fields=[lin.points.pk])
    services.declare_inputs(world.operator, world.own_tag, fields=[lin.points.pk])


@pytest.mark.django_db
def test_definition_fields_no_data_field_feeds_are_reported(world, lin):
    tag = metric_tag(world.own_brand, world.category, "yimei_visit_qty", "orders", "quantity")
    result = services.declare_inputs(world.steward, tag, fields=[lin.points.pk])
    assert result.uncovered == ["orders.quantity"]
    DataFieldFactory(source=lin.pos, name="qty", maps_to="orders.quantity")
    assert services.uncovered_fields(tag) == []


@pytest.mark.django_db
def test_a_definition_reading_a_missing_tag_is_reported(world):
    reader = TagFactory.build(
        brand=world.own_brand,
        business_line=world.own_line,
        category=world.category,
        code="yimei_visit_reader",
        kind="composite",
        definition={"type": "metric", "metric": {"tag": "yimei_visit_gone"}},
    )
    reader.save()
    with pytest.raises(ValidationError) as info:
        services.declare_inputs(world.steward, reader)
    assert "yimei_visit_gone" in info.value.message_dict["definition"][0]
