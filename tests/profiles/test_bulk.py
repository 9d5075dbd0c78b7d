"""Bulk COPY loads and the COPY read of the engine's frames on PostgreSQL: the same
frames as the ORM read, on generated data, whole or by OneID range."""

import datetime as dt

import pandas as pd
import pytest
from django.db import IntegrityError, connection

from tagportal.profiles import bulk, loaders
from tagportal.profiles.generator import generate
from tagportal.profiles.models import Customer, Event, Order

pytestmark = pytest.mark.django_db

END = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("COPY needs PostgreSQL (DATABASE_URL)")


@pytest.fixture
def loaded(postgres, brand):
    counts = {"customers": 0, "events": 0, "orders": 0}
    for chunk, start in enumerate((1, 401)):  # two chunks, as a large load writes them
        frames = generate(chunk + 3, 400, 6, industry="medical_aesthetics", end=END, start_oneid=start)
        for name, rows in bulk.copy_generated(brand, frames, prefix=f"t{chunk}").items():
            counts[name] += rows
    return counts


def test_copy_writes_every_generated_row(brand, loaded):
    assert loaded["customers"] == Customer.objects.filter(brand=brand).count() == 800
    assert loaded["events"] == Event.objects.filter(brand=brand).count() > 800
    assert loaded["orders"] == Order.objects.filter(brand=brand).count() > 400
    person = Customer.objects.get(brand=brand, oneid=5)
    assert "gender" in person.attributes and isinstance(person.attributes.get("registered_days"), int)


@pytest.mark.parametrize("oneid_range", [None, (1, 300), (300, 650), (2000, 3000)])
@pytest.mark.parametrize("since", [None, END - dt.timedelta(days=90)])
def test_the_copy_read_gives_the_orm_frames(brand, loaded, oneid_range, since):
    # a merged person is left out by both
    Customer.objects.filter(brand=brand, oneid=7).update(
        merged_into=Customer.objects.get(brand=brand, oneid=8)
    )
    fast = loaders.load_frames(brand, oneid_range=oneid_range, since=since)
    slow = loaders.load_frames(brand, oneid_range=oneid_range, since=since, orm=True)
    assert set(fast) == set(slow) == {"profiles", "events", "orders"}
    for name in fast:
        pd.testing.assert_frame_equal(fast[name], slow[name], check_exact=True)
    if oneid_range != (2000, 3000):
        assert len(fast["events"]) and 7 not in set(fast["profiles"]["oneid"])


def _indexes_and_keys() -> set:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid IN ('profiles_event'::regclass, 'profiles_order'::regclass) UNION ALL "
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid IN ('profiles_event'::regclass, 'profiles_order'::regclass)"
        )
        return set(cursor.fetchall())


def test_a_load_with_deferred_indexes_ends_with_the_same_indexes_and_keys(postgres, brand):
    before = _indexes_and_keys()
    assert any("brand_customer_time" in name for name, _ in before)
    with bulk.deferred_indexes(Event, Order):
        during = _indexes_and_keys()
        frames = generate(2, 300, 4, industry="medical_aesthetics", end=END)
        counts = bulk.copy_generated(brand, frames, prefix="d")
    assert len(during) < len(before)
    assert not any("brand_customer_time" in name for name, _ in during)
    assert _indexes_and_keys() == before
    assert Event.objects.filter(brand=brand).count() == counts["events"] > 0
    # the keys hold again: the same client ids a second time are refused
    again = {
        name: frame.assign(oneid=frame["oneid"] + 1000) if name != "identities" else frame
        for name, frame in frames.items()
    }
    with pytest.raises(IntegrityError, match="client_id"):
        bulk.copy_generated(brand, again, prefix="d")
