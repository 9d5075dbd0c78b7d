"""A partition of a computation reads its OneID range from the database, nothing
else, and the partitions together give what one run over everybody gives."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tagportal.engine import services
from tagportal.profiles.models import Customer, Event, Order
from tests.engine.test_compute import AS_OF, stored
from tests.engine.test_compute import tags as tags  # the fixture

pytestmark = pytest.mark.django_db

TABLES = ("profiles_customer", "profiles_event", "profiles_order")


def people(brand, oneids=range(1, 10)):
    """People with a gold member level for OneID 7, OneID squared % 5 store visits
    (1, 4, 4, 1, 0, …) in the last days and an order each."""
    for oneid in oneids:
        customer = Customer.objects.create(
            brand=brand,
            oneid=oneid,
            attributes={"member_level": "gold" if oneid == 7 else "silver", "gender": "female"},
        )
        for k in range(oneid * oneid % 5):
            Event.objects.create(
                brand=brand,
                customer=customer,
                client_id=f"v{oneid}-{k}",
                type="store_visit",
                time=AS_OF - dt.timedelta(days=k + 1),
            )
        Order.objects.create(brand=brand, customer=customer, client_id=f"o{oneid}", time=AS_OF, amount=oneid)


def profile_reads(queries) -> dict[str, str]:
    found = {}
    for query in queries.captured_queries:
        table = re.search(r'FROM "(\w+)"', query["sql"])
        if table and table.group(1) in TABLES and query["sql"].lstrip().upper().startswith("SELECT"):
            found.setdefault(table.group(1), []).append(query["sql"])
    return found


def test_a_partition_names_its_range_in_every_read(world, tags):
    people(world.own_brand)
    people(world.other_brand)
    pending = services.enqueue_compute(world.own_brand, partitions=3)

    with CaptureQueriesContext(connection) as queries:
        part = services.compute_range(world.own_brand, None, 4, 8, pending, as_of=AS_OF)

    reads = profile_reads(queries)
    assert set(reads) == set(TABLES)
    for table, texts in reads.items():
        for text in texts:
            assert re.search(r'"oneid" >= 4\b', text) and re.search(r'"oneid" < 8\b', text), (table, text)
    assert not part.errors
    assert part.population == 4  # OneIDs 4, 5, 6, 7 of this brand only
    assert part.rows_read == 4 + 4 + (1 + 0 + 1 + 4)  # people, orders, visits of 4..7
    assert sorted(part.outcomes[tags.vip.pk].bitmaps["true"]) == [7]
    assert sorted(part.outcomes[tags.vip.pk].bitmaps["false"]) == [4, 5, 6]


def test_partitions_from_the_database_give_the_unpartitioned_result(world, tags):
    people(world.own_brand)
    whole_report = services.compute_brand(world.own_brand, as_of=AS_OF)
    whole = {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)}

    with CaptureQueriesContext(connection) as queries:
        report = services.compute_brand(world.own_brand, as_of=AS_OF, partitions=3)

    assert {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)} == whole
    assert report.population == whole_report.population == 9
    assert report.rows_read == whole_report.rows_read
    assert whole[tags.vip.code]["true"] == [7]
    assert len(profile_reads(queries)["profiles_event"]) == 3  # one read per partition
