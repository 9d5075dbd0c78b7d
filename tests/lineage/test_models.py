"""Models, their validation and the database constraints behind them."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tagportal.lineage.models import DataField, DataSource, InputOrigin, TagInput, engine_field_error

from .factories import DataFieldFactory, DataSourceFactory


@pytest.mark.parametrize(
    "maps_to",
    [
        "profile.member_level",
        "profile.age",
        "events.type",
        "events.properties.project",
        "orders.amount",
        "orders.properties.coupon",
    ],
)
def test_engine_fields_accepted(maps_to):
    assert engine_field_error(maps_to) is None


@pytest.mark.parametrize(
    "maps_to,words",
    [
        ("profile.shoe_size", "Unknown profile attribute"),
        ("events.colour", "Unknown events field"),
        ("orders.properties.", "Unknown orders field"),
        ("wallet.balance", "profile.<attribute>"),
        ("member_level", "profile.<attribute>"),
    ],
)
def test_unknown_engine_fields_refused(maps_to, words):
    assert words in engine_field_error(maps_to)


@pytest.mark.django_db
def test_field_maps_to_is_validated_by_full_clean():
    field = DataFieldFactory.build(source=DataSourceFactory(), name="shoe", maps_to="profile.shoe_size")
    with pytest.raises(ValidationError) as info:
        field.full_clean()
    assert "Unknown profile attribute" in info.value.message_dict["maps_to"][0]


@pytest.mark.django_db
def test_field_name_unique_per_source():
    first = DataFieldFactory(name="member_level")
    clone = DataField(source=first.source, name="member_level")
    with pytest.raises(ValidationError) as info:
        clone.full_clean()
    assert "already has a field named “member_level”" in info.value.message_dict["name"][0]
    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()
    DataFieldFactory(source=DataSourceFactory(), name="member_level")  # another source: fine


@pytest.mark.django_db
@pytest.mark.parametrize("field,value", [("kind", "fax"), ("refresh_sla_hours", 0)])
def test_source_check_constraints(field, value):
    source = DataSourceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DataSource.objects.filter(pk=source.pk).update(**{field: value})


@pytest.mark.django_db
def test_source_sla_at_least_one_hour_in_forms():
    source = DataSourceFactory.build(code="x", refresh_sla_hours=0)
    with pytest.raises(ValidationError) as info:
        source.full_clean()
    assert "refresh_sla_hours" in info.value.message_dict


@pytest.mark.django_db
def test_tag_input_reads_a_field_or_a_tag_never_both_nor_neither(world, lin):
    tag = world.own_tag
    with pytest.raises(IntegrityError), transaction.atomic():
        TagInput.objects.create(tag=tag, field=lin.points, upstream=world.other_tag)
    with pytest.raises(IntegrityError), transaction.atomic():
        TagInput.objects.create(tag=tag)
    with pytest.raises(IntegrityError), transaction.atomic():
        TagInput.objects.create(tag=tag, upstream=tag)
    with pytest.raises(IntegrityError), transaction.atomic():
        TagInput.objects.filter(tag=tag).update(origin="rumour")


@pytest.mark.django_db
def test_tag_input_unique_per_field_and_per_tag(world, lin):
    tag = world.own_tag
    TagInput.objects.create(tag=tag, field=lin.points)
    with pytest.raises(IntegrityError), transaction.atomic():
        TagInput.objects.create(tag=tag, field=lin.points, origin=InputOrigin.DEFINITION)


@pytest.mark.django_db
def test_tag_input_clean_names_the_problem(world):
    with pytest.raises(ValidationError) as info:
        TagInput(tag=world.own_tag, upstream=world.other_tag).full_clean()
    assert "own brand" in str(info.value)


@pytest.mark.django_db
def test_changes_are_recorded_in_history(lin):
    lin.crm.refresh_sla_hours = 6
    lin.crm._change_reason = "夜间批量"
    lin.crm.save()
    latest = lin.crm.history.first()
    assert latest.refresh_sla_hours == 6 and latest.history_change_reason == "夜间批量"
    assert lin.points.history.count() == 1


@pytest.mark.django_db
def test_shared_sources_are_visible_to_every_holder_of_the_permission(world, lin):
    for user in (world.operator, world.analyst, world.steward):
        sources = set(DataSource.objects.restrict(user, "view"))
        assert sources == {lin.crm, lin.pos}, user
        fields = set(DataField.objects.restrict(user, "view"))
        assert lin.member_level in fields and lin.pos_amount in fields
        assert lin.tmall_amount not in fields
    assert set(DataSource.objects.restrict(world.admin, "view")) == {lin.crm, lin.pos, lin.tmall}
    assert not DataSource.objects.restrict(world.nobody, "view").exists()


@pytest.mark.django_db
def test_only_admins_change_shared_sources(world, lin):
    changeable = set(DataSource.objects.restrict(world.steward, "change"))
    assert changeable == {lin.pos}
    assert not DataSource.objects.restrict(world.operator, "change").exists()
    assert lin.crm in set(DataSource.objects.restrict(world.admin, "change"))
