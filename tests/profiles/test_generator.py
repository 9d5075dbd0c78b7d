"""Demo data: deterministic by seed, the engine's columns, realistic enough that the
industry templates' tags have values, and loaded into the database idempotently."""

import datetime as dt
import io

import pandas as pd
import pytest
from django.core.management import call_command

from tagportal.catalog.templates import available_packs
from tagportal.engine.evaluate import evaluate_tags
from tagportal.profiles import generator, loaders
from tagportal.profiles.choices import IdentityType
from tagportal.profiles.models import Customer, Event, Identity, Order
from tagportal.profiles.schema import CHANNELS, EVENT_FIELDS, EVENT_TYPES, ORDER_FIELDS, PROFILE_ATTRIBUTES

from ..engine.test_evaluate_templates import pack_specs

END = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)


def frames(seed=7, people=500, **kwargs):
    return generator.generate(seed, people, 8, industry=kwargs.pop("industry", "beauty"), end=END, **kwargs)


def test_same_seed_same_data_other_seed_other_data():
    one, two, other = frames(), frames(), frames(seed=8)
    for name in ("customers", "identities", "events", "orders"):
        pd.testing.assert_frame_equal(one[name], two[name])
    assert not one["events"]["time"].equals(other["events"]["time"])


def test_columns_are_the_engines():
    data = frames()
    assert list(data["customers"].columns) == ["oneid", *PROFILE_ATTRIBUTES]
    events, orders = data["events"], data["orders"]
    assert {"oneid", "time", *EVENT_FIELDS} <= set(events.columns)
    assert {"oneid", "time", *ORDER_FIELDS} <= set(orders.columns)
    extra = set(events.columns) - {"oneid", "time", *EVENT_FIELDS}
    assert extra and all(c.startswith("properties.") for c in extra)
    assert set(events["type"].dropna()) <= set(EVENT_TYPES)
    assert set(events["channel"].dropna()) | set(orders["channel"].dropna()) <= set(CHANNELS)
    assert str(events["time"].dtype) == "datetime64[ns, UTC]" and events["time"].max() <= END
    assert set(data["identities"]["type"]) <= set(IdentityType.values)
    assert set(events["oneid"]) <= set(data["customers"]["oneid"])
    # everybody has an identity; identities are unique
    assert set(data["identities"]["oneid"]) == set(data["customers"]["oneid"])
    assert (
        not data["identities"].duplicated(["type", "app", "value"]).any()
        or (
            data["identities"]["type"] == "device_id"  # shared family devices
        )[data["identities"].duplicated(["type", "app", "value"], keep=False)].all()
    )


def test_sizes_and_channels_are_parameters():
    data = generator.generate(1, 300, 4, ["store", "wecom", "tmall"], industry="medical_aesthetics", end=END)
    assert len(data["customers"]) == 300
    assert 900 < len(data["events"]) < 1500
    assert set(data["events"]["channel"].dropna()) <= {"store", "wecom", "tmall"}
    assert set(data["orders"]["channel"].dropna()) <= {"store", "wecom", "tmall"}
    assert "treatment" in set(data["events"]["type"]) and "page_view" not in set(data["events"]["type"])
    with pytest.raises(ValueError):
        generator.generate(1, 10, 1, industry="mining")


def test_industry_vocabulary():
    medical = frames(industry="medical_aesthetics")
    treatments = medical["events"][medical["events"]["type"] == "treatment"]
    assert treatments["properties.project"].notna().all() and "热玛吉" in set(
        treatments["properties.project"]
    )
    assert set(treatments["properties.project_type"]) <= {"光电", "注射", "皮肤管理", "手术"}
    assert {"储值卡", "疗程卡"} <= set(medical["orders"]["category"])
    assert set(medical["customers"]["skin_type"].dropna()) <= {"油性", "干性", "混合性", "中性", "敏感性"}
    food = frames(industry="food_beverage")
    assert "sign_in" in set(food["events"]["type"]) and food["customers"]["skin_type"].isna().all()
    assert {"douyin", "tmall", "jd"} <= set(food["orders"]["channel"])


@pytest.mark.parametrize("industry", generator.INDUSTRIES)
def test_the_templates_tags_have_values(industry):
    data = generator.generate(3, 1500, 10, industry=industry, end=END)
    # manual tags (filled by uploads or algorithm models) evaluate to nobody; the tags
    # reading them still evaluate
    every = pack_specs(available_packs()[industry])
    result = evaluate_tags(every, data["customers"], data["events"], data["orders"], END)
    assert result.errors == {}
    # the message feedback tags (营销互动 / 触达反馈) read the events the platform writes when
    # it sends (message_sent, message_clicked): generated data has none
    specs = [s for s in every if s.definition["type"] != "manual" and not s.code.startswith("demo_reach_")]

    def has_values(spec):
        values = result.values[spec.code]
        return (
            bool(values.fillna(False).any()) if spec.value_type == "boolean" else bool(values.notna().any())
        )

    empty = [s.code for s in specs if not has_values(s)]
    assert len(empty) <= 0.05 * len(specs), empty


@pytest.mark.django_db
def test_load_demo_writes_everything_once(world):
    brand = world.own_brand
    counts = generator.load_demo(
        brand, people=150, seed=2, events_per_person=5, industry="medical_aesthetics", end=END
    )
    data = generator.generate(2, 150, 5, industry="medical_aesthetics", end=END)
    assert counts["events"] == len(data["events"]) == Event.objects.filter(brand=brand).count()
    assert counts["orders"] == len(data["orders"]) == Order.objects.filter(brand=brand).count()
    assert Customer.objects.filter(brand=brand).count() == counts["customers"] == 150
    assert (
        Identity.objects.filter(brand=brand).count()
        == counts["identities"]
        == len(data["identities"].drop_duplicates(["type", "value"]))
    )
    first = Customer.objects.get(brand=brand, oneid=1)
    expected = data["customers"].iloc[0]
    assert first.attributes["gender"] == expected["gender"]
    assert first.attributes["registered_days"] == expected["registered_days"]
    treatment = Event.objects.filter(brand=brand, type="treatment").first()
    assert {"project", "project_type"} <= set(treatment.properties)
    assert Order.objects.filter(brand=brand).exclude(items=[]).count() == counts["orders"]
    again = generator.load_demo(
        brand, people=150, seed=2, events_per_person=5, industry="medical_aesthetics", end=END
    )
    assert again == {"customers": 0, "identities": 0, "events": 0, "orders": 0}
    # the engine's frames read back from the database
    loaded = loaders.load_frames(brand)
    assert len(loaded["profiles"]) == 150 and len(loaded["events"]) == counts["events"]
    assert "properties.project" in loaded["events"].columns


@pytest.mark.django_db
def test_generate_demo_data_command(world, tmp_path):
    out = io.StringIO()
    call_command("generate_demo_data", brand=world.own_brand.code, people=50, seed=1, stdout=out)
    assert "Demo data (medical_aesthetics)" in out.getvalue()
    assert Customer.objects.filter(brand=world.own_brand).count() == 50
    call_command("generate_demo_data", people=40, seed=1, parquet=str(tmp_path), stdout=io.StringIO())
    events = pd.read_parquet(tmp_path / "events.parquet")
    assert len(pd.read_parquet(tmp_path / "customers.parquet")) == 40 and len(events) > 0
