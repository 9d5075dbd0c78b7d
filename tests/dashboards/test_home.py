"""The workbench at ``/``: a login first, then each role's panels with counts, links and
empty states, and a header whose links go to the portal's pages, not the admin index."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tagportal.catalog.models import Tag
from tagportal.catalog.services import publish_tag
from tagportal.governance import services as governance
from tagportal.governance.choices import ReportKind

from .conftest import cold_meta, cold_row, make_report

pytestmark = pytest.mark.django_db

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def page(user, **headers) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/", **headers)
    assert response.status_code == 200
    return response.content.decode()


def panel(html: str, key: str) -> str:
    start = html.index(f'id="tp-panel-{key}"')
    return html[start : html.index("</section>", start)]


def test_anonymous_is_sent_to_the_login():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_login_lands_on_the_workbench(world):
    world.operator.set_password("pw-operator-1")
    world.operator.save()
    client = Client()
    login_page = client.get(reverse("admin:login")).content.decode()
    assert 'name="next" value="/"' in login_page
    response = client.post(
        reverse("admin:login"), {"username": "op", "password": "pw-operator-1", "next": "/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_operator_sees_their_tags_requests_and_audiences(world):
    world.own_tag.owner = world.operator
    world.own_tag.save()
    publish_tag(world.own_tag)
    world.own_tag.refresh_from_db()
    cr = governance.propose(
        world.operator, [governance.ItemSpec("update", world.own_tag, {"description": "近90天到店次数"})]
    )
    html = page(world.operator)
    assert 'data-roles="operator"' in html
    mine = panel(html, "my-tags")
    assert 'data-count="1"' in mine and world.own_tag.code in mine
    assert reverse("admin:catalog_tag_change", args=[world.own_tag.pk]) in mine
    requests = panel(html, "my-requests")
    assert 'data-count="1"' in requests and reverse("governance:request", args=[cr.pk]) in requests
    assert 'data-count="0"' in panel(html, "my-audiences")
    assert "tp-panel-review-queue" not in html  # the steward's panels are not an operator's
    assert world.other_tag.code not in html


def test_operator_sees_the_cold_tags_of_their_lines_only(world):
    make_report(
        ReportKind.COLD,
        [cold_row(world.own_tag, 80), cold_row(world.other_tag, 90)],
        cold_meta(),
    )
    care = panel(page(world.operator), "needs-care")
    assert 'data-count="1"' in care and world.own_tag.code in care
    assert world.other_tag.code not in care


def test_empty_panels_say_so_in_chinese(world):
    html = page(world.operator, **CHINESE)
    assert "工作台" in html
    assert "您还没有圈选过人群。" in panel(html, "my-audiences")
    assert "没有进行中的草稿或变更单。" in panel(html, "my-requests")


def test_steward_sees_the_review_queue_with_its_count(world):
    publish_tag(world.own_tag)
    world.own_tag.refresh_from_db()
    cr = governance.propose(
        world.operator,
        [governance.ItemSpec("update", world.own_tag, {"description": "近90天到店次数"})],
        submit_now=True,
    )
    html = page(world.steward)
    assert 'data-roles="steward"' in html
    queue = panel(html, "review-queue")
    assert 'data-count="1"' in queue and reverse("governance:request", args=[cr.pk]) in queue
    for key in ("recertify", "stale-sources", "cleanup"):
        assert f'id="tp-panel-{key}"' in html
    assert "tp-panel-my-tags" not in html


def test_steward_sees_published_tags_due_for_recertification(world):
    publish_tag(world.own_tag)
    Tag.objects.filter(pk=world.own_tag.pk).update(certified_at=timezone.now() - dt.timedelta(days=3650))
    due = panel(page(world.steward), "recertify")
    assert 'data-count="1"' in due and world.own_tag.code in due


def test_analyst_gets_the_search_and_no_panels(world):
    html = page(world.analyst)
    assert 'data-roles="analyst"' in html
    assert 'id="tp-home-search"' in html and 'name="q"' in html
    assert "tp-panel-" not in html


def test_header_links_go_to_the_portal_pages(world):
    html = page(world.operator)
    nav = html[html.index('id="tp-portal-nav"') : html.index("</nav>", html.index('id="tp-portal-nav"'))]
    assert f'href="{reverse("home")}"' in nav
    assert f'href="{reverse("admin:catalog_tag_changelist")}"' in nav
    assert f'href="{reverse("admin:index")}"' not in nav
    # an operator reviews nothing: their link is to their own requests
    assert f'href="{reverse("governance:queue")}"' not in nav
    assert f'href="{reverse("governance:mine")}"' in nav
    steward = page(world.steward)
    assert 'id="tp-nav-review"' in steward and 'id="tp-nav-admin"' not in steward
    assert 'id="tp-nav-admin"' in page(world.admin)
