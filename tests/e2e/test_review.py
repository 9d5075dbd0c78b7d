"""An operator proposes a description change in the browser; a data steward finds it in
the review queue, reads the side-by-side diff and approves it: version 2 is published."""

import pytest
from django.utils import timezone

from tagportal.catalog.models import Tag
from tagportal.governance.models import ChangeRequest
from tagportal.notifications.models import Notification

from .conftest import demo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NEW_DESCRIPTION = "按皮肤检测仪结果与问卷综合判定的肤质（干性、油性、混合、敏感）"


def login(page, live_server, username, password):
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")


def test_operator_proposes_and_steward_approves(live_server, page):
    demo("--people", "200", "--no-models")
    # the demo leaves messages in the steward's inbox: start from an empty one
    Notification.objects.filter(recipient__username="steward").update(read_at=timezone.now())
    tag = Tag.objects.get(code="yimei_skin_skin_type")
    assert tag.published_version == 1
    old_description = tag.description

    login(page, live_server, "operator", "tagportal-operator")
    page.goto(f"{live_server.url}/review/propose/{tag.pk}/")
    assert page.input_value("#id_kind") == "update"
    assert page.input_value("#id_description") == old_description  # prefilled
    assert page.is_visible("#tp-update-fields") and not page.is_visible("#id_merge_target")
    page.fill("#id_description", NEW_DESCRIPTION)
    page.fill("#id_title", "完善肤质标签的描述")
    assert page.is_checked("#id_submit_now")
    page.click("#tp-propose-submit")
    page.wait_for_selector("#tp-request-header")
    assert page.get_attribute("#tp-state", "data-state") == "submitted"
    cr = ChangeRequest.objects.get(title="完善肤质标签的描述")
    assert cr.items.get().changes == {"description": NEW_DESCRIPTION}

    login(page, live_server, "steward", "tagportal-steward")
    page.goto(f"{live_server.url}/review/")
    assert "完善肤质标签的描述" in page.locator("#tp-requests").inner_text()
    assert page.locator("#tp-review-nav .tp-badge").inner_text() == "1"  # the review request in the inbox
    page.click(f"#tp-requests tr[data-request='{cr.pk}'] a")
    page.wait_for_selector("table.tp-diff")
    diff = page.locator("table.tp-diff tr[data-field=description]").inner_text()
    assert NEW_DESCRIPTION in diff and old_description in diff
    assert page.is_checked("#id_apply_now")  # apply now is the default
    page.fill("#id_reason", "描述更完整")
    page.click("#tp-approve")
    page.wait_for_selector("#tp-state[data-state=applied]")
    assert "描述更完整" in page.locator("#tp-decision-reason").inner_text()

    tag.refresh_from_db()
    assert tag.published_version == 2 and tag.description == NEW_DESCRIPTION
    cr.refresh_from_db()
    assert cr.reviewer.username == "steward" and cr.state == "applied"
