"""The dashboard pages with stored reports: what a steward sees, the figures' traces,
and that nobody sees another business line's tags."""

import pytest

from tagportal.governance.choices import ReportKind

from .conftest import (
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


def text(response) -> str:
    return response.content.decode()


def all_reports(w):
    """One report of each kind over every business line, with rows of both lines."""
    reports = {}
    reports["activity"] = make_report(
        ReportKind.ACTIVITY,
        [
            activity_row(WEEKS[0], w.own_line, w.own_brand, changed=2, created=1),
            activity_row(WEEKS[1], w.own_line, w.own_brand, changed=3),
            activity_row(WEEKS[1], w.other_line, w.other_brand, changed=7),
        ],
        {
            "weeks": WEEKS,
            "business_lines": {str(w.own_line.pk): "医美", str(w.other_line.pk): "食品饮料"},
            "brands": {},
            "regions": {},
            "period": {},
            "totals": {"changed": 12},
        },
    )
    reports["usage"] = make_report(
        ReportKind.USAGE,
        [
            usage_row(
                w.own_tag,
                weekly=(1, 2, 3),
                uses=(3, 6, 6),
                trend="rising",
                by_client={"7": 6},
                last_used="2026-03-28",
            ),
            usage_row(w.own_tag2, weekly=(0, 0, 0)),
            usage_row(w.other_tag, weekly=(50, 50, 50), uses=(50, 150, 150), by_client={"8": 150}),
        ],
        usage_meta({"7": "小程序后台", "8": "清泉CRM"}),
    )
    reports["cold"] = make_report(
        ReportKind.COLD,
        [
            cold_row(w.own_tag2, 72, coverage=0.0, psi=0.3, drift=True),
            cold_row(w.own_tag, 55, coverage=1.0, psi=0.05),
            cold_row(w.other_tag, 90, coverage=0.25, psi=0.5, drift=True),
        ],
        cold_meta(),
    )
    reports["merge"] = make_report(
        ReportKind.MERGE,
        [
            pair_row(w.own_tag, w.own_tag2, score=0.85, target=w.own_tag2),
            pair_row(w.own_tag, w.other_tag, 0.95),
        ],
        {"thresholds": {}, "period": {}, "pairs": 2},
    )
    return reports


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_every_page_answers_without_reports(dash, login):
    client = login(dash.steward)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
    assert "No finished report for this selection yet." in text(client.get("/dashboards/cold/"))


def test_dashboard_headline_and_small_figures(dash, login):
    all_reports(dash)
    response = login(dash.steward).get("/dashboards/")
    assert response.status_code == 200
    headline = response.context["headline"]
    # the steward sees the own line only: two tags, one of them unused, both cold, one pair
    assert headline == {"tags": 2, "cold": 2, "pairs": 1, "unused": 1}
    figures = response.context["figures"]
    assert set(figures) == {"activity", "usage", "cold", "duplicates"}
    assert [t.name for t in figures["activity"].data] == ["医美"]
    assert 'id="tp-figures"' in text(response)
    assert "plotly/plotly.min.js" in text(response)
    assert 'id="tp-run-form"' in text(response)


def test_dashboard_for_an_admin_counts_every_line(dash, login):
    all_reports(dash)
    response = login(dash.admin).get("/dashboards/")
    assert response.context["headline"] == {"tags": 3, "cold": 3, "pairs": 2, "unused": 1}
    assert [t.name for t in response.context["figures"]["activity"].data] == ["食品饮料", "医美"]


def test_activity_one_trace_per_visible_line(dash, login):
    all_reports(dash)
    response = login(dash.admin).get("/dashboards/activity/")
    assert response.status_code == 200
    (figure,) = response.context["figures"].values()
    traces = {t.name: list(t.y) for t in figure.data}
    assert traces == {"医美": [2, 3, 0], "食品饮料": [0, 7, 0]}
    assert all(t.type == "bar" for t in figure.data)
    created = login(dash.admin).get("/dashboards/activity/?measure=created").context["figures"]["activity"]
    assert {t.name: list(t.y) for t in created.data}["医美"] == [1, 0, 0]

    operator = login(dash.operator).get("/dashboards/activity/")
    assert [(t.name, list(t.y)) for t in operator.context["figures"]["activity"].data] == [
        ("医美", [2, 3, 0])
    ]
    assert "食品饮料" not in text(operator)


def test_activity_unknown_measure_is_a_400(dash, login):
    response = login(dash.steward).get("/dashboards/activity/?measure=deleted")
    assert response.status_code == 400
    assert "Unknown measure" in text(response)


def test_usage_heatmap_and_tables(dash, login):
    all_reports(dash)
    response = login(dash.steward).get("/dashboards/usage/")
    assert response.status_code == 200
    (heatmap,) = response.context["figures"]["heatmap"].data
    assert heatmap.type == "heatmap"
    assert list(heatmap.y) == ["到店行为", "购买行为"]
    assert [list(z) for z in heatmap.z] == [[1, 2, 3], [0, 0, 0]]
    most = response.context["most"]
    assert [row["brief"]["code"] for row in most] == [dash.own_tag.code, dash.own_tag2.code]
    assert (most[0]["uses_7"], most[0]["uses_30"], most[0]["uses_90"]) == (3, 6, 6)
    assert most[0]["trend"] == "rising" and most[0]["last_used"] == "2026-03-28"
    assert most[0]["clients"] == [("小程序后台", 6)]
    assert response.context["least"][0]["brief"]["code"] == dash.own_tag2.code
    assert response.context["clients"] == [{"name": "小程序后台", "uses": 6}]
    page = text(response)
    assert "到店次数" in page and "复购意向" in page
    assert "购买次数" not in page and "清泉CRM" not in page


def test_cold_ranking_and_findings(dash, login):
    all_reports(dash)
    response = login(dash.steward).get("/dashboards/cold/")
    assert response.status_code == 200
    figure = response.context["figures"]["ranking"]
    assert [t.legendgroup for t in figure.data] == ["usage", "coverage", "computation", "lineage", "cost"]
    assert list(figure.data[0].y) == [
        "复购意向 (yimei_buy_fu_gou_yi_xiang)",
        "到店次数 (yimei_visit_dao_dian_ci_shu)",
    ]
    assert list(figure.data[0].x) == [40.0, 40.0]
    assert list(figure.data[1].x) == [10.0, 10.0]
    assert "Not used in the last 90 days" in figure.data[0].customdata[0]
    findings = response.context["findings"]
    assert [f["brief"]["tag"] for f in findings] == [dash.own_tag2.pk, dash.own_tag.pk]
    assert findings[0]["reasons"] == ["Not used in the last 90 days"]
    page = text(response)
    assert f'name="finding" value="{dash.own_tag2.pk}"' in page
    assert "Not used in the last 90 days" in page
    assert "购买次数" not in page


def test_analysts_see_no_checkboxes(dash, login):
    all_reports(dash)
    page = text(login(dash.analyst).get("/dashboards/cold/"))
    assert "到店次数" in page
    assert 'name="finding"' not in page
    page = text(login(dash.analyst).get("/dashboards/duplicates/"))
    assert 'name="pair"' not in page
    assert 'id="tp-run-form"' not in text(login(dash.analyst).get("/dashboards/"))


def test_quality_histograms_and_lists(dash, login):
    all_reports(dash)
    response = login(dash.steward).get("/dashboards/quality/")
    assert response.status_code == 200
    figures = response.context["figures"]
    assert figures["coverage"].data[0].type == "histogram"
    assert sorted(figures["coverage"].data[0].x) == [0.0, 1.0]
    assert sorted(figures["psi"].data[0].x) == [0.05, 0.3]
    assert figures["psi"].layout.shapes[0].x0 == response.context["threshold"]
    lists = response.context["lists"]
    assert [r["tag"] for r in lists["empty"]] == [dash.own_tag2.pk]
    assert [r["tag"] for r in lists["full"]] == [dash.own_tag.pk]
    assert [r["tag"] for r in lists["drifting"]] == [dash.own_tag2.pk]


def test_duplicates_scores_evidence_and_target(dash, login):
    all_reports(dash)
    response = login(dash.steward).get("/dashboards/duplicates/")
    assert response.status_code == 200
    bars = response.context["figures"]["scores"].data
    assert bars[0].type == "bar" and list(bars[0].x) == [0.85]
    assert list(bars[1].x) == [0.8]
    (pair,) = response.context["pairs"]
    assert pair["evidence"] == ["same definition", "similar names (0.92)", "members overlap (Jaccard 80%)"]
    assert pair["target"] == dash.own_tag2.pk
    page = text(response)
    a, b = sorted([dash.own_tag.pk, dash.own_tag2.pk])
    assert f'name="pair" value="{a}:{b}"' in page
    assert f'name="keep-{a}-{b}" value="{dash.own_tag2.pk}" checked' in page
    assert "购买次数" not in page
    assert len(login(dash.admin).get("/dashboards/duplicates/").context["pairs"]) == 2


def test_a_filter_narrows_the_rows(dash, login):
    all_reports(dash)
    client = login(dash.admin)
    response = client.get(f"/dashboards/cold/?business_line={dash.other_line.pk}")
    assert [f["brief"]["tag"] for f in response.context["findings"]] == [dash.other_tag.pk]
    response = client.get(f"/dashboards/activity/?brand={dash.own_brand.pk}")
    assert [t.name for t in response.context["figures"]["activity"].data] == ["医美"]


def test_the_most_specific_report_is_shown(dash, login):
    reports = all_reports(dash)
    own = make_report(ReportKind.COLD, [cold_row(dash.own_tag, 99)], cold_meta(), business_line=dash.own_line)
    client = login(dash.steward)
    response = client.get(f"/dashboards/cold/?business_line={dash.own_line.pk}")
    assert response.context["report_info"]["report"].pk == own.pk
    assert client.get("/dashboards/cold/").context["report_info"]["report"].pk == reports["cold"].pk
    chosen = client.get(f"/dashboards/cold/?report={reports['cold'].pk}&business_line={dash.own_line.pk}")
    assert chosen.context["report_info"]["report"].pk == reports["cold"].pk


def test_a_line_report_when_no_report_covers_everything(dash, login):
    own = make_report(ReportKind.COLD, [cold_row(dash.own_tag, 99)], cold_meta(), business_line=dash.own_line)
    response = login(dash.steward).get("/dashboards/cold/")
    assert response.context["report_info"]["report"].pk == own.pk
    assert response.context["report_info"]["covers"] is False
    assert "covers only 医美" in text(response)


@pytest.mark.parametrize("url", PAGES)
def test_a_filter_on_a_line_the_user_may_not_see(dash, login, url):
    all_reports(dash)
    response = login(dash.operator).get(f"{url}?business_line={dash.other_line.pk}")
    assert response.status_code == 404
    assert "you may not see it: nothing is shown" in text(response)
    assert "购买次数" not in text(response)


def test_bad_filters(dash, login):
    client = login(dash.steward)
    assert client.get("/dashboards/cold/?business_line=abc").status_code == 400
    assert client.get(f"/dashboards/cold/?brand={dash.other_brand.pk}").status_code == 404
    assert client.get("/dashboards/cold/?region=999999").status_code == 404
    assert client.get("/dashboards/cold/?report=999999").status_code == 404
    assert client.get("/dashboards/usage/?top=0").status_code == 400


def test_a_report_of_another_line_is_not_shown(dash, login):
    other = make_report(
        ReportKind.COLD, [cold_row(dash.other_tag, 90)], cold_meta(), business_line=dash.other_line
    )
    client = login(dash.operator)
    assert client.get(f"/dashboards/cold/?report={other.pk}").status_code == 404
    assert client.get("/dashboards/cold/").context["report_info"] is None
    assert str(other.pk) not in [
        str(r["report"].pk) for r in client.get("/dashboards/reports/").context["rows"]
    ]


def test_reports_list(dash, login):
    reports = all_reports(dash)
    own = make_report(ReportKind.COLD, [cold_row(dash.own_tag, 99)], cold_meta(), business_line=dash.own_line)
    make_report(ReportKind.COLD, [], cold_meta(), business_line=dash.other_line)
    response = login(dash.steward).get("/dashboards/reports/")
    assert response.status_code == 200
    rows = {row["report"].pk: row for row in response.context["rows"]}
    assert set(rows) == {r.pk for r in reports.values()} | {own.pk}
    assert rows[own.pk]["findings"] == 1
    every_line = reports["cold"]
    own_rows = [row for row in every_line.data["rows"] if row["business_line"] == dash.own_line.pk]
    assert rows[every_line.pk]["findings"] == len(own_rows) < len(every_line.data["rows"])  # not all lines'
    admin_rows = {
        row["report"].pk: row for row in login(dash.admin).get("/dashboards/reports/").context["rows"]
    }
    assert admin_rows[every_line.pk]["findings"] == every_line.row_count
    assert rows[own.pk]["scope"] == "医美"
    cold_only = login(dash.steward).get("/dashboards/reports/?kind=cold").context["rows"]
    assert {row["report"].kind for row in cold_only} == {"cold"}
    assert login(dash.steward).get("/dashboards/reports/?kind=nope").status_code == 400


def test_pages_in_chinese(dash, login):
    all_reports(dash)
    client = login(dash.steward)
    response = client.get("/dashboards/cold/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert "复购意向" in text(response)
