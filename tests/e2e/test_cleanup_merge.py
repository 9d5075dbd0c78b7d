"""From the demo's duplicate finding to an applied merge, in the browser: a data steward
opens the duplicates dashboard, selects the pair the merge report found, previews the
change request with its lineage impact and creates it; a second steward approves it
and the copy is retired into the template tag, its code kept as an alias."""

import pytest

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import BusinessLine, Tag, TagAlias
from tagportal.governance.models import ChangeRequest

from .conftest import demo
from .test_review import login

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORIGINAL = "yimei_spend_high_ticket_buyer"
COPY = "yimei_spend_da_dan_gu_ke"


def test_steward_merges_a_duplicate_found_by_the_report(live_server, page):
    demo("--people", "200", "--no-models")
    original = Tag.objects.get(code=ORIGINAL)
    copy = Tag.objects.get(code=COPY)
    line = BusinessLine.objects.get(code="yimei")

    login(page, live_server, "steward", "tagportal-steward")
    page.goto(f"{live_server.url}/dashboards/duplicates/?business_line={line.pk}")
    low, high = sorted((original.pk, copy.pk))
    row = page.locator(f"#tp-pairs tr[data-pair='{low}:{high}']")
    assert row.count() == 1
    text = row.inner_text()
    assert ORIGINAL in text and COPY in text
    # the same definition and the same members: both kinds of evidence are shown
    assert page.locator("#tp-figure-scores .main-svg").count() >= 1  # the Plotly figure was drawn
    row.locator("input[name=pair]").check()
    row.locator(f"input[type=radio][value='{original.pk}']").check()  # keep the template's tag
    page.fill("#tp-cleanup-reason", "同一口径的重复标签")
    page.click("#tp-cleanup input[type=submit]")
    page.wait_for_selector("#tp-cleanup-confirm")
    preview = page.locator("#content").inner_text()
    assert COPY in preview and ORIGINAL in preview
    page.click("#tp-cleanup-confirm input[type=submit]")
    page.wait_for_selector("#tp-request-header")
    assert page.get_attribute("#tp-state", "data-state") == "submitted"
    cr = ChangeRequest.objects.get(items__tag=copy)
    item = cr.items.get()
    assert (item.kind, item.merge_target_id) == ("merge", original.pk)

    login(page, live_server, "steward2", "tagportal-steward2")
    page.goto(f"{live_server.url}/review/{cr.pk}/")
    assert page.is_checked("#id_apply_now")
    page.click("#tp-approve")
    page.wait_for_selector("#tp-state[data-state=applied]")
    copy.refresh_from_db()
    assert copy.status == TagStatus.RETIRED
    assert TagAlias.objects.get(code=COPY).target == original
