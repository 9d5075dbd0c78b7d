"""The engine's input frames read from the database: one brand, or one OneID range of
it, with the range in the SQL of every read (a partition never reads other people)."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tagportal.profiles import loaders
from tagportal.profiles.models import Customer, Event, Order

NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)
TABLES = ("profiles_customer", "profiles_event", "profiles_order")

pytestmark = pytest.mark.django_db


def person(brand, oneid, merged_into=None, days=(1, 40)):
    """A person with an event and an order on each of ``days`` (days before NOW)."""
    customer = Customer.objects.create(
        brand=brand, oneid=oneid, attributes={"gender": "female"}, merged_into=merged_into
    )
    for day in days:
        moment = NOW - dt.timedelta(days=day)
        Event.objects.create(
            brand=brand, customer=customer, client_id=f"e{oneid}-{day}", type="store_visit", time=moment
        )
        Order.objects.create(
            brand=brand, customer=customer, client_id=f"o{oneid}-{day}", time=moment, amount=10 * oneid
        )
    return customer


@pytest.fixture
def people(brand, other_brand):
    """People 1..9 of the brand, 10 merged into 4, and another brand's OneIDs 1..9."""
    mine = {oneid: person(brand, oneid) for oneid in range(1, 10)}
    person(brand, 10, merged_into=mine[4])
    for oneid in range(1, 10):
        person(other_brand, oneid)
    return mine


def reads(queries) -> dict[str, str]:
    """The SQL of each read of people, events and orders, by the table it reads."""
    found = {}
    for query in queries.captured_queries:
        sql = query["sql"]
        table = re.search(r'FROM "(\w+)"', sql)
        if sql.lstrip().upper().startswith("SELECT") and table and table.group(1) in TABLES:
            assert table.group(1) not in found, "a table was read twice"
            found[table.group(1)] = sql
    return found


def oneids(frame) -> list[int]:
    return sorted(frame["oneid"].astype(int).tolist())


def test_a_range_is_in_the_sql_of_every_read_and_nobody_else_comes_back(brand, people):
    with CaptureQueriesContext(connection) as queries:
        frames = loaders.load_frames(brand, oneid_range=(3, 6))

    sql = reads(queries)
    assert set(sql) == set(TABLES)
    for table, text in sql.items():
        assert re.search(r'"oneid" >= 3\b', text), (table, text)
        assert re.search(r'"oneid" < 6\b', text), (table, text)
    assert oneids(frames["profiles"]) == [3, 4, 5]
    assert oneids(frames["events"]) == [3, 3, 4, 4, 5, 5]
    assert oneids(frames["orders"]) == [3, 3, 4, 4, 5, 5]
    assert sorted(frames["orders"]["amount"].tolist()) == [30.0, 30.0, 40.0, 40.0, 50.0, 50.0]


def test_ranges_cut_the_brand_into_disjoint_parts(brand, people):
    whole = loaders.load_frames(brand)
    parts = [loaders.load_frames(brand, oneid_range=r) for r in ((0, 4), (4, 8), (8, 2**62))]
    for name in ("profiles", "events", "orders"):
        assert sorted(o for part in parts for o in oneids(part[name])) == oneids(whole[name])
    assert oneids(whole["profiles"]) == list(range(1, 10))  # not the merged person, not the other brand
    assert len(whole["events"]) == len(whole["orders"]) == 18
    assert oneids(parts[2]["profiles"]) == oneids(parts[2]["events"])[::2] == [8, 9]


def test_since_and_a_range_together(brand, people):
    with CaptureQueriesContext(connection) as queries:
        frames = loaders.load_frames(brand, since=NOW - dt.timedelta(days=10), oneid_range=(8, 100))
    assert oneids(frames["events"]) == oneids(frames["orders"]) == [8, 9]
    assert oneids(frames["profiles"]) == [8, 9]
    assert '"time" >=' in reads(queries)["profiles_event"]


def test_an_empty_range_gives_empty_frames_with_the_columns(brand, people):
    frames = loaders.load_frames(brand, oneid_range=(50, 60))
    assert frames["profiles"].empty and list(frames["profiles"].columns) == ["oneid"]
    assert frames["events"].empty and {"oneid", "time", "type"} <= set(frames["events"].columns)
    assert frames["orders"].empty and {"oneid", "time", "amount"} <= set(frames["orders"].columns)


def test_oneid_bounds_cover_the_brands_people(brand, other_brand, people):
    from tagportal.catalog.models import Brand

    assert loaders.oneid_bounds(brand) == (1, 10)
    Customer.objects.create(brand=other_brand, oneid=500)
    assert loaders.oneid_bounds(other_brand) == (1, 500)
    empty = Brand.objects.create(code="empty", name="空品牌", business_line=brand.business_line)
    assert loaders.oneid_bounds(empty) == (None, None)
