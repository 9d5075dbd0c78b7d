"""Cleanup from the dashboards: selected findings → preview with the lineage impact →
a submitted change request, through the real cleanup service; refused posts create
nothing and say why."""

import pytest

from tagportal.governance.choices import ChangeKind, ReportKind, RequestState
from tagportal.governance.models import ChangeItem, ChangeRequest
from tagportal.notifications.models import Notification

from .conftest import brief, cold_meta, cold_row, make_report, pair_row

pytestmark = pytest.mark.django_db

URL = "/dashboards/cleanup/"


def text(response) -> str:
    return response.content.decode()


def nothing_created() -> bool:
    return not ChangeRequest.objects.exists() and not ChangeItem.objects.exists()


@pytest.fixture
def cold_report(dash):
    return make_report(
        ReportKind.COLD,
        [cold_row(dash.own_tag2, 72), cold_row(dash.own_tag, 60), cold_row(dash.other_tag, 90)],
        cold_meta(),
    )


def test_from_a_cold_finding_to_a_submitted_change_request(dash, login, cold_report):
    dash.own_tag2.owner = dash.operator
    dash.own_tag2.save()
    client = login(dash.steward)
    page = client.get("/dashboards/cold/")
    assert f'name="finding" value="{dash.own_tag2.pk}"' in text(page)
    post = {
        "report": cold_report.pk,
        "action": "deprecate",
        "finding": [dash.own_tag2.pk],
        "reason": "90天无人使用",
    }
    preview = client.post(URL, post)
    assert preview.status_code == 200
    (row,) = preview.context["rows"]
    assert row["tag"] == dash.own_tag2 and row["action"] == ChangeKind.DEPRECATE
    assert row["owners"] == [dash.operator]
    assert "Create change request" in text(preview)
    assert nothing_created()

    response = client.post(URL, {**post, "confirm": "1"})
    cr = ChangeRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/review/{cr.pk}/"
    assert cr.state == RequestState.SUBMITTED and cr.proposer == dash.steward
    assert list(cr.items.values_list("kind", "tag")) == [(ChangeKind.DEPRECATE, dash.own_tag2.pk)]
    assert "90天无人使用" in cr.description
    assert Notification.objects.filter(change_request=cr, recipient=dash.operator).exists()
    followed = client.get(response["Location"])
    assert f"Change request #{cr.pk} is submitted for review" in text(followed)


def test_several_cold_findings_make_one_request(dash, login, cold_report):
    client = login(dash.steward)
    response = client.post(
        URL,
        {
            "report": cold_report.pk,
            "action": "retire",
            "finding": [dash.own_tag.pk, dash.own_tag2.pk],
            "confirm": "1",
        },
    )
    cr = ChangeRequest.objects.get()
    assert response["Location"] == f"/review/{cr.pk}/"
    assert cr.is_bulk and cr.items.count() == 2


def test_findings_of_two_lines_lead_to_my_requests(dash, login, cold_report):
    response = login(dash.admin).post(
        URL,
        {
            "report": cold_report.pk,
            "action": "retire",
            "finding": [dash.own_tag.pk, dash.other_tag.pk],
            "confirm": "1",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/review/mine/"
    assert ChangeRequest.objects.count() == 2


def test_merge_pair_keeps_the_chosen_tag(dash, login):
    from tagportal.governance.reports.merge import fingerprint

    row = pair_row(dash.own_tag, dash.own_tag2, target=dash.own_tag)
    a, b = row["a"]["tag"], row["b"]["tag"]
    row["fingerprint"] = {str(t.pk): fingerprint(t) for t in (dash.own_tag, dash.own_tag2)}
    report = make_report(ReportKind.MERGE, [row])
    client = login(dash.steward)
    # keep the other one than suggested
    post = {
        "report": report.pk,
        "action": "merge",
        "pair": [f"{a}:{b}"],
        f"keep-{a}-{b}": str(dash.own_tag2.pk),
    }
    preview = client.post(URL, post)
    assert preview.status_code == 200, text(preview)
    (entry,) = preview.context["rows"]
    assert entry["tag"] == dash.own_tag and entry["target"] == dash.own_tag2
    assert f'name="finding" value="{a}:{b}:{dash.own_tag2.pk}"' in text(preview)
    response = client.post(
        URL,
        {"report": report.pk, "action": "merge", "finding": f"{a}:{b}:{dash.own_tag2.pk}", "confirm": "1"},
    )
    item = ChangeItem.objects.get()
    assert response["Location"] == f"/review/{item.change_request_id}/"
    assert (item.kind, item.tag, item.merge_target) == (ChangeKind.MERGE, dash.own_tag, dash.own_tag2)


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("unknown_report", 404, "no such finished report"),
        ("other_line_report", 404, "no such finished report"),
        ("no_findings", 400, "Select at least one finding"),
        ("unknown_action", 400, "Unknown cleanup action"),
        ("wrong_action", 400, "is not a cleanup for this report"),
        ("foreign_tag", 400, "may not see"),
        ("not_a_finding", 400, "not a finding of this report"),
        ("garbage", 400, "Not a valid finding"),
    ],
)
def test_bad_posts_create_nothing(dash, login, cold_report, case, status, message):
    other = make_report(
        ReportKind.COLD, [cold_row(dash.other_tag, 90)], cold_meta(), business_line=dash.other_line
    )
    post = {"report": cold_report.pk, "action": "deprecate", "finding": [dash.own_tag.pk]}
    if case == "unknown_report":
        post["report"] = 999999
    elif case == "other_line_report":
        post["report"] = other.pk
    elif case == "no_findings":
        post.pop("finding")
    elif case == "unknown_action":
        post["action"] = "delete"
    elif case == "wrong_action":
        post["action"] = "merge"
    elif case == "foreign_tag":
        post["finding"] = [dash.other_tag.pk]
    elif case == "not_a_finding":
        make_report(ReportKind.COLD, [], cold_meta())
        post["finding"] = [dash.own_tag.pk + 1000]
    elif case == "garbage":
        post["finding"] = ["drop table"]
    for confirm in ("", "1"):
        response = login(dash.operator).post(URL, {**post, "confirm": confirm})
        assert response.status_code == status, case
        assert message.lower() in text(response).lower()
    assert nothing_created()


def test_a_tag_changed_since_the_report_is_refused(dash, login, cold_report):
    from tagportal.catalog.models import Tag

    Tag.objects.filter(pk=dash.own_tag.pk).update(status="deprecated")
    response = login(dash.steward).post(
        URL, {"report": cold_report.pk, "action": "retire", "finding": [dash.own_tag.pk], "confirm": "1"}
    )
    assert response.status_code == 400
    assert "changed since the report" in text(response)
    assert nothing_created()


def test_analysts_may_not_clean_up(dash, login, cold_report):
    response = login(dash.analyst).post(
        URL, {"report": cold_report.pk, "action": "deprecate", "finding": [dash.own_tag.pk], "confirm": "1"}
    )
    assert response.status_code == 403
    assert "You may not propose changes." in text(response)
    assert nothing_created()


def test_get_is_not_allowed(dash, login):
    assert login(dash.steward).get(URL).status_code == 405


def test_briefs_match_the_service(dash):
    """The crafted rows name tags the way the cleanup service compares them."""
    row = brief(dash.own_tag)
    assert (row["version"], row["status"]) == (dash.own_tag.published_version, dash.own_tag.status)
