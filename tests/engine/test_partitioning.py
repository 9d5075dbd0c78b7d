"""The number of OneID ranges of a computation follows the memory budget."""

import pytest
from django.db import connection
from django.test import override_settings

from tagportal.engine import partitioning, services
from tagportal.engine.models import TagRun
from tagportal.profiles.loaders import row_counts
from tests.engine.test_compute import tags as tags  # the fixture
from tests.engine.test_partition_reads import people


def test_the_benchmarks_brand_needs_ranges_under_a_gigabyte():
    # 1M people, 10M events, 2.5M orders measured 2.8 GB of working set.
    assert partitioning.working_mb(1_000_000, 10_000_000, 2_500_000) == pytest.approx(2800, rel=0.05)
    assert partitioning.partitions_for_counts(1_000_000, 10_000_000, 2_500_000, budget=1024) == 3
    assert partitioning.partitions_for_counts(1_000_000, 10_000_000, 2_500_000, budget=4096) == 1
    # 10M people and 100M events under 2 GB per worker.
    assert partitioning.partitions_for_counts(10_000_000, 100_000_000, 25_000_000, budget=2048) == 14


def test_small_and_absurd_inputs():
    assert partitioning.partitions_for_counts(0, 0, 0, budget=1) == 1
    assert partitioning.partitions_for_counts(3, 10**9, 0, budget=1) == 3  # never more ranges than people
    assert partitioning.partitions_for_counts(10**9, 10**10, 0, budget=1) == partitioning.MAX_PARTITIONS
    with pytest.raises(ValueError):
        partitioning.partitions_for_counts(10, 10, 10, budget=0)


@pytest.mark.django_db
def test_counts_and_budget_of_a_brand(world):
    brand = world.own_brand
    people(brand)
    counts = row_counts(brand)
    assert counts["people"] == 9
    if connection.vendor == "postgresql":  # the planner's estimate for events and orders
        assert counts["events"] >= 1 and counts["orders"] >= 1
    else:
        assert counts == {"people": 9, "events": 20, "orders": 9}
    assert partitioning.partitions_for(brand) == 1  # a test brand fits the default budget
    tiny = partitioning.working_mb(counts["people"], counts["events"], counts["orders"]) / 4
    assert partitioning.partitions_for(brand, budget=tiny) == min(4, counts["people"])


@pytest.mark.django_db
def test_a_request_without_partitions_is_split_by_the_budget(world, tags, django_capture_on_commit_callbacks):
    brand = world.own_brand
    people(brand)
    counts = row_counts(brand)
    tiny = partitioning.working_mb(counts["people"], counts["events"], counts["orders"]) / 3
    with override_settings(TAGPORTAL_COMPUTE_PARTITION_MB=tiny):
        with django_capture_on_commit_callbacks(execute=True):
            pending = services.enqueue_compute(brand)
    runs = TagRun.objects.filter(tag__brand=brand, pending_version=pending)
    assert runs.exists()
    assert set(runs.values_list("partitions", flat=True)) == {3}
