"""Charts that open with data: the activity chart's measure, each tag counted once
whatever its regions, and the drift chart replaced by a message when there is no PSI."""

import pytest

from tagportal.dashboards import figures as fig
from tagportal.governance.choices import ReportKind
from tagportal.governance.reports import build

from .conftest import WEEKS, activity_row, cold_meta, cold_row, make_report

pytestmark = pytest.mark.django_db


def test_activity_opens_on_a_measure_with_data(dash, login):
    make_report(
        ReportKind.ACTIVITY,
        [
            activity_row(WEEKS[0], dash.own_line, dash.own_brand, created=2),
            activity_row(WEEKS[1], dash.own_line, dash.own_brand, approved=1),
        ],
        {"weeks": WEEKS},
    )
    client = login(dash.steward)
    response = client.get("/dashboards/activity/")
    assert response.status_code == 200
    assert fig.DEFAULT_MEASURE == "changed" and response.context["measure"] == "created"
    (trace,) = response.context["figures"]["activity"].data
    assert sum(trace.y) == 2
    # asked for, the empty measure is still drawn
    assert client.get("/dashboards/activity/?measure=changed").context["measure"] == "changed"
    home = client.get("/dashboards/")
    assert sum(home.context["figures"]["activity"].data[0].y) == 2
    assert 'id="tp-activity-measure"' in home.content.decode()


def test_a_tag_of_two_regions_is_created_once(dash, login):
    from tests.factories import RegionFactory
    from tests.governance.test_reports import make_tag, scope

    china = RegionFactory(code="cn7", name="中国", level="country")
    shanghai = RegionFactory(code="sh7", name="上海", level="province", parent=china)
    beijing = RegionFactory(code="bj7", name="北京", level="province", parent=china)
    for suffix in ("one", "two", "three"):
        make_tag(dash.own_brand, dash.category, suffix, created=scope().end, regions=[shanghai, beijing])
    data = build("activity", scope(brand=dash.own_brand))
    assert sum(row["created"] for row in data["rows"]) == 6  # one row per region
    assert data["meta"]["totals"]["created"] == 3
    make_report(ReportKind.ACTIVITY, data["rows"], data["meta"], brand=dash.own_brand)
    response = login(dash.steward).get("/dashboards/activity/", {"measure": "created"})
    assert response.status_code == 200
    (line,) = response.context["totals"]
    created = line["values"][fig.MEASURES.index("created")]
    assert created == 3
    (trace,) = response.context["figures"]["activity"].data
    assert sum(trace.y) == 3


def test_quality_says_so_when_no_drift_was_measured(dash, login):
    make_report(
        ReportKind.COLD,
        [cold_row(dash.own_tag, 60, psi=None), cold_row(dash.own_tag2, 20, psi=None)],
        cold_meta(),
    )
    response = login(dash.steward).get("/dashboards/quality/")
    assert response.status_code == 200
    assert "psi" not in response.context["figures"] and "coverage" in response.context["figures"]
    assert 'id="tp-psi-empty"' in response.content.decode()


def test_merge_labels_wrap_the_pair_on_two_lines(dash):
    from .conftest import pair_row

    figure = fig.duplicate_scores([pair_row(dash.own_tag, dash.own_tag2)])
    (label,) = figure.data[0].y
    assert "↔<br>" in label
    assert figure.layout.yaxis.automargin is True
