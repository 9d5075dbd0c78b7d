"""The usage buffer: recording is one INSERT, aggregation folds it into daily counters by
Beijing day without losing or double counting anything, and old counters are pruned."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from tagportal.core.days import beijing_today
from tagportal.usage import services as usage
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage, UsageBuffer
from tagportal.usage.services import add_counts, aggregate, record, record_safely
from tests.factories import TagFactory

UTC = dt.UTC


@pytest.fixture
def tags(db):
    return TagFactory(), TagFactory(), TagFactory()


def counters() -> dict[tuple[int, dt.date, str, int], int]:
    return {(u.tag_id, u.day, u.kind, u.client): u.count for u in TagUsage.objects.all()}


def buffer_statements(queries) -> list[str]:
    return [q["sql"] for q in queries if "usage_usagebuffer" in q["sql"] or "usage_tagusage" in q["sql"]]


# ---------------------------------------------------------------------------
# Recording


def test_record_is_one_insert_whatever_the_number_of_tags(tags):
    first, second, third = tags
    with CaptureQueriesContext(connection) as queries:
        assert record({first.pk: 2, second.pk: 1, third.pk: 5}, client=7, kind=UsageKind.TAG_READ) == 3
    statements = buffer_statements(queries)
    assert len(statements) == 1 and statements[0].startswith("INSERT"), statements
    assert sorted(UsageBuffer.objects.values_list("tag_id", "kind", "client", "count")) == sorted(
        [(first.pk, "tag_read", 7, 2), (second.pk, "tag_read", 7, 1), (third.pk, "tag_read", 7, 5)]
    )


def test_record_takes_tag_ids_and_skips_nothing_to_count(tags):
    first, second, _third = tags
    assert record([first.pk, second.pk], client=3, kind=UsageKind.PAGE_VIEW) == 2
    assert record({first.pk: 0}, client=3) == 0
    with CaptureQueriesContext(connection) as queries:
        assert record([], client=3) == 0
    assert not queries.captured_queries
    assert sorted(UsageBuffer.objects.values_list("tag_id", "count")) == sorted(
        [(first.pk, 1), (second.pk, 1)]
    )


@pytest.mark.parametrize("kind", ["", "download", "API_READ"])
def test_unknown_kind_is_a_value_error(tags, kind):
    with pytest.raises(ValueError, match="unknown usage kind"):
        record([tags[0].pk], client=1, kind=kind)
    assert not UsageBuffer.objects.exists()


@pytest.mark.parametrize("kind", UsageKind.values)
def test_every_kind_is_recorded(tags, kind):
    record([tags[0].pk], client=1, kind=kind)
    aggregate()
    assert counters() == {(tags[0].pk, beijing_today(), kind, 1): 1}


def test_record_safely_never_fails_the_request(tags, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(usage, "record", broken)
    record_safely([tags[0].pk], client=1, kind=UsageKind.TAG_READ)  # no exception
    assert "could not record the usage" in caplog.text
    # the surrounding transaction is still usable
    assert TagUsage.objects.count() == 0


# ---------------------------------------------------------------------------
# Aggregation


def test_aggregate_folds_by_beijing_day(tags):
    first, second, _third = tags
    record({first.pk: 1}, client=1, at=dt.datetime(2026, 12, 1, 15, 59, tzinfo=UTC))  # 23:59 in Beijing
    record({first.pk: 2}, client=1, at=dt.datetime(2026, 12, 1, 16, 0, tzinfo=UTC))  # 00:00 next day
    record({first.pk: 4}, client=1, at=dt.datetime(2026, 12, 1, 23, 30, tzinfo=UTC))  # 07:30 next day
    record({second.pk: 1}, client=2, kind=UsageKind.EXPORT, at=dt.datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    result = aggregate(now=dt.datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    assert result == {"folded": 4, "counters": 3, "pruned": 0}
    assert counters() == {
        (first.pk, dt.date(2026, 12, 1), "api_read", 1): 1,
        (first.pk, dt.date(2026, 12, 2), "api_read", 1): 6,
        (second.pk, dt.date(2026, 12, 2), "export", 2): 1,
    }
    assert not UsageBuffer.objects.exists()


def test_aggregate_adds_to_existing_counters_and_keeps_clients_and_kinds_apart(tags):
    first = tags[0]
    day = beijing_today()
    add_counts({first.pk: 10}, client=1, kind=UsageKind.TAG_READ, day=day)
    record({first.pk: 2}, client=1, kind=UsageKind.TAG_READ)
    record({first.pk: 3}, client=2, kind=UsageKind.TAG_READ)
    record({first.pk: 4}, client=1, kind=UsageKind.PAGE_VIEW)
    aggregate()
    assert counters() == {
        (first.pk, day, "tag_read", 1): 12,
        (first.pk, day, "tag_read", 2): 3,
        (first.pk, day, "page_view", 1): 4,
    }


def test_aggregate_twice_counts_once(tags):
    first = tags[0]
    record({first.pk: 3}, client=1)
    aggregate()
    record({first.pk: 2}, client=1)
    aggregate()
    aggregate()  # nothing left to fold
    assert counters() == {(first.pk, beijing_today(), "api_read", 1): 5}


def test_uses_recorded_while_aggregating_wait_for_the_next_run(tags, monkeypatch):
    """A use buffered after aggregation read the buffer, before it deleted what it folded,
    is neither lost nor counted twice."""
    first, second, _third = tags
    record({first.pk: 1}, client=1)
    real_add = usage.add_rows
    arrivals = []

    def add_while_someone_records(rows):
        if not arrivals:  # only during the first run
            arrivals.append(record({first.pk: 10, second.pk: 1}, client=1))
        real_add(rows)

    monkeypatch.setattr(usage, "add_rows", add_while_someone_records)
    assert aggregate()["folded"] == 1
    today = beijing_today()
    assert counters() == {(first.pk, today, "api_read", 1): 1}
    assert UsageBuffer.objects.count() == 2  # the late uses are still buffered
    assert aggregate()["folded"] == 2
    assert counters() == {(first.pk, today, "api_read", 1): 11, (second.pk, today, "api_read", 1): 1}
    assert not UsageBuffer.objects.exists()


def test_uses_of_a_deleted_tag_are_dropped(tags):
    first, second, _third = tags
    record({first.pk: 1, second.pk: 2}, client=1)
    gone = second.pk
    second.delete()
    result = aggregate()
    assert result["folded"] == 2
    assert counters() == {(first.pk, beijing_today(), "api_read", 1): 1}
    assert not UsageBuffer.objects.filter(tag_id=gone).exists()


# ---------------------------------------------------------------------------
# Retention


def _ages():
    return sorted((beijing_today() - day).days for day in TagUsage.objects.values_list("day", flat=True))


@pytest.mark.parametrize("setting", [30, 400])
def test_counters_are_kept_at_least_400_days(tags, settings, setting):
    settings.TAGPORTAL_USAGE_RETENTION_DAYS = setting
    today = beijing_today()
    for age in (0, 399, 400, 401, 800):
        add_counts({tags[0].pk: 1}, client=1, day=today - dt.timedelta(days=age))
    assert aggregate()["pruned"] == 2
    assert _ages() == [0, 399, 400]


def test_a_longer_retention_keeps_more(tags, settings):
    settings.TAGPORTAL_USAGE_RETENTION_DAYS = 730
    today = beijing_today()
    for age in (399, 401, 730, 731):
        add_counts({tags[0].pk: 1}, client=1, day=today - dt.timedelta(days=age))
    assert aggregate()["pruned"] == 1
    assert _ages() == [399, 401, 730]
    assert usage.retention_days() == 730
