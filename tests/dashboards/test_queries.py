"""The pages cost the same number of queries whatever the number of rows: no query per
tag, pair or week (the viewer's reach is read once, the rest is the report's JSON)."""

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tagportal.governance.choices import ReportKind

from ..factories import TagFactory
from .conftest import (
    END,
    PAGES,
    WEEKS,
    activity_row,
    cold_meta,
    cold_row,
    make_report,
    pair_row,
    usage_meta,
    usage_row,
)

pytestmark = pytest.mark.django_db


def reports_for(w, tags, end):
    make_report(
        ReportKind.USAGE,
        [usage_row(t, weekly=(i, 1, 0), uses=(1, 2, i), by_client={str(i): i}) for i, t in enumerate(tags)],
        usage_meta({str(i): f"客户{i}" for i in range(len(tags))}),
        end=end,
    )
    make_report(
        ReportKind.COLD,
        [
            cold_row(t, 50 + i % 50, coverage=(i % 3) / 2, psi=i / 100, drift=i % 2 == 0)
            for i, t in enumerate(tags)
        ],
        cold_meta(),
        end=end,
    )
    make_report(
        ReportKind.MERGE,
        [pair_row(a, b, 0.5 + i / 200) for i, (a, b) in enumerate(itertools.pairwise(tags))],
        end=end,
    )
    make_report(
        ReportKind.ACTIVITY,
        [activity_row(WEEKS[i % 3], w.own_line, w.own_brand, changed=i) for i in range(len(tags))],
        {"weeks": WEEKS},
        end=end,
    )


def counts(client):
    found = {}
    for url in PAGES:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, url
        found[url] = len(queries)
    for fmt in ("csv", "xlsx"):
        report_id = client.get("/dashboards/cold/").context["report_info"]["report"].pk
        url = f"/dashboards/reports/{report_id}/download/?format={fmt}"
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        found[fmt] = len(queries)
    return found


@pytest.mark.slow
def test_query_count_does_not_grow_with_rows(dash, login):
    client = login(dash.steward)
    for url in PAGES:  # warm the caches (content types) once
        client.get(url)
    tags = [TagFactory(brand=dash.own_brand, category=dash.category) for _ in range(5)]
    reports_for(dash, tags, END)
    few = counts(client)
    tags += [TagFactory(brand=dash.own_brand, category=dash.category) for _ in range(45)]
    reports_for(dash, tags, END + dt.timedelta(days=7))
    many = counts(client)
    assert client.get("/dashboards/cold/").context["page"].paginator.count == 50
    assert few == many
