"""The review pages at /review/: what each role sees, and the whole path of a change
through the forms a browser posts (propose → review → apply)."""

import csv
import datetime as dt
import io
import json

import pytest
from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from tagportal.catalog.models import Tag
from tagportal.catalog.services import publish_tag
from tagportal.governance import services
from tagportal.governance.choices import ChangeKind, RequestState
from tagportal.governance.models import ChangeRequest
from tagportal.lineage.models import DataSource
from tagportal.notifications import services as notifications
from tagportal.notifications.models import Notification

from ..factories import TagFactory
from ..lineage.factories import DataFieldFactory, DataSourceFactory, reading_tag

pytestmark = pytest.mark.django_db

NEW_DESCRIPTION = "近90天到店次数（含预约到店）"


@pytest.fixture
def published(world):
    """The two world tags, published as version 1."""
    publish_tag(world.own_tag)
    publish_tag(world.other_tag)
    world.own_tag.refresh_from_db()
    world.other_tag.refresh_from_db()
    return world


def login(client, user):
    client.force_login(user)
    return client


def as_posted(form, **overrides) -> dict:
    """What a browser posts for ``form`` left as rendered, with ``overrides`` typed in."""
    data = {}
    for field in form:
        value = field.value()
        if isinstance(field.field, forms.BooleanField):
            if value:
                data[field.name] = "on"
            continue
        if value is None:
            continue
        data[field.name] = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
    for name, value in overrides.items():
        if value is None or value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


def propose_in_browser(client, tag, **overrides):
    page = client.get(f"/review/propose/{tag.pk}/")
    assert page.status_code == 200
    return client.post(f"/review/propose/{tag.pk}/", as_posted(page.context["form"], **overrides))


def submitted_update(user, tag, description=NEW_DESCRIPTION) -> ChangeRequest:
    return services.propose(
        user,
        [services.ItemSpec(kind=ChangeKind.UPDATE, tag=tag, changes={"description": description})],
        submit_now=True,
    )


def text_of(response) -> str:
    return response.content.decode()


# ---------------------------------------------------------------------------
# Who sees what


def test_pages_need_a_login(client, world):
    for url in ("/review/", "/review/mine/", "/review/inbox/", "/review/audit/", "/review/1/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_every_page_renders_for_its_role(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    login(client, w.steward)
    for url in (
        "/review/",
        "/review/mine/",
        "/review/all/",
        f"/review/{cr.pk}/",
        "/review/inbox/",
        "/review/recertify/",
        "/review/audit/",
        "/review/bulk/",
        "/review/propose/",
        f"/review/propose/{w.own_tag.pk}/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert 'id="tp-review-nav"' in text_of(response), url
    template = client.get("/review/bulk/template.csv")
    assert template.status_code == 200 and template["Content-Type"].startswith("text/csv")

    login(client, w.operator)
    for url in ("/review/", "/review/mine/", f"/review/{cr.pk}/", "/review/inbox/", "/review/bulk/"):
        assert client.get(url).status_code == 200, url
    for url in ("/review/recertify/", "/review/audit/", "/review/audit/csv/?start=2026-01-01&end=2026-01-02"):
        assert client.get(url).status_code == 403, url

    login(client, w.analyst)
    assert client.get(f"/review/{cr.pk}/").status_code == 200
    for url in (f"/review/propose/{w.own_tag.pk}/", "/review/bulk/", "/review/recertify/", "/review/audit/"):
        assert client.get(url).status_code == 403, url

    login(client, w.nobody)
    assert client.get("/review/").status_code == 403
    assert client.get(f"/review/{cr.pk}/").status_code == 404
    assert client.get("/review/inbox/").status_code == 200


def test_another_business_lines_request_answers_404(client, published):
    w = published
    theirs = submitted_update(w.admin, w.other_tag)
    login(client, w.steward)
    assert client.get(f"/review/{theirs.pk}/").status_code == 404
    assert client.post(f"/review/{theirs.pk}/", {"action": "approve"}).status_code == 404
    assert f"/review/{theirs.pk}/" not in text_of(client.get("/review/all/"))
    login(client, w.operator)
    assert client.get(f"/review/propose/{w.other_tag.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == RequestState.SUBMITTED


def test_queue_lists_what_waits_for_the_steward(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    submitted_update(w.admin, w.other_tag)
    login(client, w.steward)
    response = client.get("/review/")
    rows = response.context["rows"]
    assert [row["cr"].pk for row in rows] == [cr.pk]
    assert rows[0]["age"] == 0 and rows[0]["count"] == 1
    assert str(rows[0]["kind"]) == "Update"
    assert "瑞颜" in text_of(response)
    # filters: business line, kind, minimum age
    assert client.get("/review/", {"kind": "deprecate"}).context["rows"] == []
    assert (
        len(client.get("/review/", {"kind": "update", "business_line": w.own_line.pk}).context["rows"]) == 1
    )
    assert client.get("/review/", {"min_age": 3}).context["rows"] == []
    ChangeRequest.objects.filter(pk=cr.pk).update(submitted_at=timezone.now() - dt.timedelta(days=5))
    rows = client.get("/review/", {"min_age": 3}).context["rows"]
    assert [row["age"] for row in rows] == [5]
    # the operator's own request is under "my requests", not in their queue
    login(client, w.operator)
    assert client.get("/review/").context["rows"] == []
    assert [row["cr"].pk for row in client.get("/review/mine/").context["rows"]] == [cr.pk]


def test_queue_and_request_flag_stale_data(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    source = DataSourceFactory(code="yimei-pos", name="门店收银", kind="pos", business_line=w.own_line)
    DataFieldFactory(source=source, name="visit_type", maps_to="events.type")
    DataSource.objects.filter(pk=source.pk).update(last_loaded_at=timezone.now() - dt.timedelta(hours=30))
    from tagportal.lineage.services import stale_tag_ids

    if w.own_tag.pk not in stale_tag_ids():  # the lineage links definitions to fields on save
        Tag.objects.get(pk=w.own_tag.pk).save()
    assert w.own_tag.pk in stale_tag_ids()
    login(client, w.steward)
    rows = client.get("/review/").context["rows"]
    assert rows[0]["stale_tags"] == [w.own_tag]
    assert "门店收银" in rows[0]["stale_reasons"][0]
    page = text_of(client.get(f"/review/{cr.pk}/"))
    assert 'id="tp-stale-warning"' in page and "门店收银" in page


# ---------------------------------------------------------------------------
# The whole path


def test_operator_proposes_and_steward_approves_with_apply_now(client, published):
    w = published
    login(client, w.operator)
    page = client.get(f"/review/propose/{w.own_tag.pk}/")
    assert "近90天到店次数" in text_of(page)  # prefilled with the current values
    response = client.post(
        f"/review/propose/{w.own_tag.pk}/",
        as_posted(page.context["form"], description=NEW_DESCRIPTION, title="完善描述"),
    )
    cr = ChangeRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/review/{cr.pk}/"
    assert cr.state == RequestState.SUBMITTED and cr.title == "完善描述"
    item = cr.items.get()
    assert item.changes == {"description": NEW_DESCRIPTION}  # only what differs

    # the request page shows the side-by-side diff
    page = client.get(f"/review/{cr.pk}/", follow=True)
    html = text_of(page)
    assert 'class="tp-diff"' in html and 'data-field="description"' in html
    assert NEW_DESCRIPTION in html and "近90天到店次数" in html
    assert 'id="tp-review-form"' not in html  # nobody reviews their own request

    login(client, w.steward)
    queue = text_of(client.get("/review/"))
    assert f"/review/{cr.pk}/" in queue
    assert 'id="tp-approve"' in text_of(client.get(f"/review/{cr.pk}/"))
    response = client.post(
        f"/review/{cr.pk}/", {"action": "approve", "reason": "描述更准确", "apply_now": "on"}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/review/{cr.pk}/"
    assert "Approved and applied" in text_of(response)
    tag = Tag.objects.get(pk=w.own_tag.pk)
    assert tag.published_version == 2 and tag.description == NEW_DESCRIPTION
    cr.refresh_from_db()
    assert cr.state == RequestState.APPLIED and cr.reviewer == w.steward
    assert cr.items.get().produced_version.version == 2


def test_definition_change_shows_a_line_diff(client, published):
    w = published
    login(client, w.operator)
    definition = dict(w.own_tag.definition)
    definition["metric"] = {**definition["metric"], "window": {"last_days": 30}}
    response = propose_in_browser(client, w.own_tag, definition=json.dumps(definition, ensure_ascii=False))
    assert response.status_code == 302
    cr = ChangeRequest.objects.get()
    html = text_of(client.get(f"/review/{cr.pk}/"))
    assert 'data-field="definition"' in html
    assert 'class="tp-line-del"' in html and 'class="tp-line-add"' in html


def test_propose_errors_are_shown_at_the_fields(client, published):
    w = published
    login(client, w.operator)
    nothing = propose_in_browser(client, w.own_tag)
    assert nothing.status_code == 400
    assert "Nothing differs" in " ".join(nothing.context["form"].non_field_errors())
    bad = propose_in_browser(client, w.own_tag, definition='{"type": "metric", "metric": {"agg": "nope"}}')
    assert bad.status_code == 400
    assert bad.context["form"].errors.get("definition"), bad.context["form"].errors
    not_json = propose_in_browser(client, w.own_tag, definition="{oops")
    assert not_json.context["form"].errors.get("definition")
    merge = propose_in_browser(client, w.own_tag, kind="merge")
    assert merge.context["form"].errors.get("merge_target")
    assert ChangeRequest.objects.count() == 0


def test_draft_tag_is_submitted_for_publication(client, world):
    login(client, world.operator)
    page = client.get(f"/review/propose/{world.own_tag.pk}/")
    assert [value for value, _label in page.context["form"].fields["kind"].choices] == ["create"]
    response = client.post(f"/review/propose/{world.own_tag.pk}/", as_posted(page.context["form"]))
    assert response.status_code == 302
    cr = ChangeRequest.objects.get()
    assert cr.state == RequestState.SUBMITTED and cr.items.get().kind == ChangeKind.CREATE
    assert Tag.objects.get(pk=world.own_tag.pk).status == "in_review"


def test_deprecating_a_tag_others_read_needs_confirming(client, published):
    w = published
    reader = reading_tag(w.own_brand, w.category, "yimei_visit_reader", w.own_tag)
    login(client, w.operator)
    page = client.get(f"/review/propose/{w.own_tag.pk}/")
    assert reader.code in text_of(page)
    refused = client.post(
        f"/review/propose/{w.own_tag.pk}/", as_posted(page.context["form"], kind="deprecate")
    )
    assert refused.status_code == 400
    assert reader.code in " ".join(refused.context["form"].errors["confirm_dependents"])
    assert ChangeRequest.objects.count() == 0
    confirmed = client.post(
        f"/review/propose/{w.own_tag.pk}/",
        as_posted(page.context["form"], kind="deprecate", confirm_dependents=True),
    )
    assert confirmed.status_code == 302
    cr = ChangeRequest.objects.get()
    html = text_of(client.get(f"/review/{cr.pk}/"))
    assert "tp-dependents" in html and reader.code in html


def test_proposer_cannot_approve_their_own_request(client, published):
    w = published
    cr = submitted_update(w.steward, w.own_tag)
    login(client, w.steward)
    page = text_of(client.get(f"/review/{cr.pk}/"))
    assert 'id="tp-review-form"' not in page
    response = client.post(f"/review/{cr.pk}/", {"action": "approve", "apply_now": "on"}, follow=True)
    assert response.status_code == 200
    assert "Four eyes" in text_of(response)
    cr.refresh_from_db()
    assert cr.state == RequestState.SUBMITTED and cr.reviewer is None


def test_reject_needs_a_reason(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    login(client, w.steward)
    response = client.post(f"/review/{cr.pk}/", {"action": "reject", "reason": "  "}, follow=True)
    assert "Say why" in text_of(response)
    cr.refresh_from_db()
    assert cr.state == RequestState.SUBMITTED
    response = client.post(f"/review/{cr.pk}/", {"action": "reject", "reason": "描述不准确"}, follow=True)
    cr.refresh_from_db()
    assert cr.state == RequestState.REJECTED and cr.decision_reason == "描述不准确"
    assert "描述不准确" in text_of(response)  # the decision reason and the comment


def test_changes_requested_edit_and_resubmit(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    login(client, w.steward)
    client.post(f"/review/{cr.pk}/", {"action": "request_changes", "reason": "写清楚是否含预约"})
    login(client, w.operator)
    html = text_of(client.get(f"/review/{cr.pk}/"))
    assert "写清楚是否含预约" in html and f"/review/{cr.pk}/edit/" in html
    page = client.get(f"/review/{cr.pk}/edit/")
    assert page.context["form"]["description"].value() == NEW_DESCRIPTION
    response = client.post(
        f"/review/{cr.pk}/edit/",
        as_posted(page.context["form"], description="近90天到店次数（含预约，不含退款）"),
    )
    assert response.status_code == 302
    cr.refresh_from_db()
    assert cr.state == RequestState.SUBMITTED
    assert cr.items.get().changes == {"description": "近90天到店次数（含预约，不含退款）"}


def test_withdraw_and_comment(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    login(client, w.steward)
    client.post(f"/review/{cr.pk}/", {"action": "comment", "text": "是否包含线上预约？"})
    assert "是否包含线上预约？" in text_of(client.get(f"/review/{cr.pk}/"))
    empty = client.post(f"/review/{cr.pk}/", {"action": "comment", "text": ""}, follow=True)
    assert "cannot be empty" in text_of(empty)
    assert client.post(f"/review/{cr.pk}/", {"action": "withdraw"}, follow=True).status_code == 200
    cr.refresh_from_db()
    assert cr.state == RequestState.SUBMITTED  # only the proposer withdraws
    login(client, w.operator)
    client.post(f"/review/{cr.pk}/", {"action": "withdraw"})
    cr.refresh_from_db()
    assert cr.state == RequestState.WITHDRAWN


def test_stale_request_shows_the_conflict_and_stays_approved(client, published):
    w = published
    first = submitted_update(w.operator, w.own_tag, "描述一")
    second = submitted_update(w.operator, w.own_tag, "描述二")
    login(client, w.steward)
    client.post(f"/review/{first.pk}/", {"action": "approve", "reason": ""})  # apply later
    first.refresh_from_db()
    assert first.state == RequestState.APPROVED
    client.post(f"/review/{second.pk}/", {"action": "approve", "apply_now": "on"})
    assert Tag.objects.get(pk=w.own_tag.pk).published_version == 2
    page = text_of(client.get(f"/review/{first.pk}/"))
    # out of date: no apply button, a banner naming both versions (see test_out_of_date.py)
    assert 'id="tp-apply-form"' not in page and 'id="tp-out-of-date-warning"' in page
    response = client.post(f"/review/{first.pk}/", {"action": "apply"}, follow=True)  # an old tab
    assert response.status_code == 200
    html = text_of(response)
    assert "version 1" in html and "version 2" in html and "has been published since" in html
    first.refresh_from_db()
    assert first.state == RequestState.APPROVED
    tag = Tag.objects.get(pk=w.own_tag.pk)
    assert tag.published_version == 2 and tag.description == "描述二"


# ---------------------------------------------------------------------------
# Bulk upload


def upload(name: str, text: str):
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def test_bulk_upload_with_a_bad_row_saves_nothing(client, published):
    w = published
    login(client, w.operator)
    csv = (
        "action,brand,code,description\n"
        f"update,ruiyan,{w.own_tag.code},{NEW_DESCRIPTION}\n"
        f"explode,ruiyan,{w.own_tag.code},x\n"
        "update,ruiyan,yimei_visit_unknown,y\n"
    )
    response = client.post("/review/bulk/", {"file": upload("changes.csv", csv), "submit_now": "on"})
    assert response.status_code == 400
    report = response.context["report"]
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(3, "action"), (4, "code")]
    html = text_of(response)
    assert 'id="tp-bulk-report"' in html and "nothing was saved" in html.lower() and "explode" in html
    assert ChangeRequest.objects.count() == 0


def test_bulk_upload_of_a_good_file_creates_one_request(client, published):
    w = published
    second = TagFactory(brand=w.own_brand, category=w.category, code="yimei_visit_second")
    publish_tag(second)
    login(client, w.operator)
    csv = (
        "操作,品牌,编码,描述\n"
        f"修改,ruiyan,{w.own_tag.code},{NEW_DESCRIPTION}\n"
        f"update,ruiyan,{second.code},第二个标签的新描述\n"
    )
    response = client.post("/review/bulk/", {"file": upload("changes.csv", csv), "submit_now": "on"})
    cr = ChangeRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/review/{cr.pk}/"
    assert cr.is_bulk and cr.state == RequestState.SUBMITTED and cr.items.count() == 2
    login(client, w.steward)
    row = client.get("/review/").context["rows"][0]
    assert row["count"] == 2 and str(row["kind"]) == "Bulk"


def test_bulk_template_downloads(client, world):
    login(client, world.operator)
    response = client.get("/review/bulk/template.csv")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    assert response.content.decode("utf-8").lstrip("\ufeff").startswith("action,brand,code")


# ---------------------------------------------------------------------------
# Inbox, re-certification, audit


def test_inbox_shows_a_notification_after_submit(client, published):
    w = published
    login(client, w.operator)
    propose_in_browser(client, w.own_tag, description=NEW_DESCRIPTION)
    cr = ChangeRequest.objects.get()
    login(client, w.steward)
    queue = text_of(client.get("/review/"))
    assert 'class="tp-badge"' in queue  # the unread count in the navigation
    inbox = client.get("/review/inbox/")
    notes = list(inbox.context["page"])
    assert len(notes) == 1 and notes[0].read_at is None
    assert "Review requested" in text_of(inbox)
    opened = client.get(f"/review/inbox/{notes[0].pk}/")
    assert opened.status_code == 302 and opened["Location"] == f"/review/{cr.pk}/"
    assert Notification.objects.get(pk=notes[0].pk).read_at is not None
    # another user's message answers 404; "mark all read" empties the unread count
    login(client, w.operator)
    assert client.get(f"/review/inbox/{notes[0].pk}/").status_code == 404
    login(client, w.steward)
    services.notify([w.steward], "另一条消息", "正文")
    client.post("/review/inbox/", {"action": "mark_all_read"})
    assert notifications.unread_count(w.steward) == 0


def test_recertify_certifies(client, published):
    w = published
    second = TagFactory(brand=w.own_brand, category=w.category, code="yimei_visit_second")
    publish_tag(second)
    long_ago = timezone.now() - dt.timedelta(days=400)
    Tag.objects.filter(pk__in=[w.own_tag.pk, second.pk, w.other_tag.pk]).update(certified_at=long_ago)
    login(client, w.steward)
    page = client.get("/review/recertify/")
    assert [row["tag"].pk for row in page.context["rows"]] == [w.own_tag.pk, second.pk]
    response = client.post("/review/recertify/", {"certify": str(w.own_tag.pk)}, follow=True)
    assert "Certified 1 tag" in text_of(response)
    tag = Tag.objects.get(pk=w.own_tag.pk)
    assert tag.certified_by == w.steward and tag.certified_at > long_ago
    assert [row["tag"].pk for row in response.context["rows"]] == [second.pk]
    # certify selected; another business line's tag is out of reach
    client.post(
        "/review/recertify/", {"tags": [str(second.pk), str(w.other_tag.pk)], "action": "certify_selected"}
    )
    assert Tag.objects.get(pk=second.pk).certified_by == w.steward
    assert Tag.objects.get(pk=w.other_tag.pk).certified_at == long_ago
    assert client.get("/review/recertify/").context["rows"] == []


def test_audit_csv_downloads_with_chinese_headers_and_the_approver(client, published):
    w = published
    cr = submitted_update(w.operator, w.own_tag)
    services.approve(w.steward, cr, "同意", apply_now=True)
    login(client, w.steward)
    today = timezone.localdate().isoformat()
    page = client.get("/review/audit/", {"start": today, "end": today, "business_line": "yimei"})
    assert page.status_code == 200
    html = text_of(page)
    assert 'id="tp-audit-csv"' in html and "business_line=yimei" in html
    response = client.get("/review/audit/csv/", {"start": today, "end": today, "business_line": "yimei"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][0] == "时间（北京时间）" and "审批人" in rows[0]
    approver = rows[0].index("审批人")
    assert any(row[approver] == "st" for row in rows[1:])
    # a bad period is an error on the form, not a file
    bad = client.get("/review/audit/csv/", {"start": today, "end": "2000-01-01"})
    assert bad.status_code == 400 and bad.context["form"].errors.get("end")


def test_requests_of_one_title_are_told_apart_by_number_and_tag(client, published):
    w = published
    first_cr = services.propose(
        w.operator,
        [services.ItemSpec(kind=ChangeKind.UPDATE, tag=w.own_tag, changes={"description": "一"})],
        title="修改说明",
        submit_now=True,
    )
    login(client, w.steward)
    html = text_of(client.get("/review/"))
    assert "修改说明" in html
    assert f"#{first_cr.pk} · {w.own_tag.name} <code>{w.own_tag.code}</code>" in html
