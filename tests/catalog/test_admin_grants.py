"""Object permissions (django-guardian) pages of business lines, brands and tags, and the brand
action that applies an industry template."""

import re

import pytest
from django.contrib.messages import get_messages
from guardian.shortcuts import get_perms

from tagportal.catalog.models import Tag
from tagportal.catalog.templates import available_packs
from tagportal.core.roles import OPERATOR

from ..factories import UserFactory
from .test_admin_forms import login

BRANDS_URL = "/admin/catalog/brand/"


def container(world, model_name):
    return {"businessline": world.own_line, "brand": world.own_brand, "tag": world.own_tag}[model_name]


def permissions_url(obj):
    return f"/admin/catalog/{obj._meta.model_name}/{obj.pk}/permissions/"


# --- the object-permission pages ---------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["businessline", "brand"])
def test_admin_reaches_the_object_permissions_page(world, model_name):
    obj = container(world, model_name)
    response = login(world.admin).get(permissions_url(obj))
    assert response.status_code == 200
    html = response.content.decode()
    assert str(obj) in html
    assert 'name="user"' in html and 'name="group"' in html  # pick a user or a group to manage
    if model_name == "businessline":
        # the business line's own groups hold its grants
        assert "bl:yimei:operators" in html and "bl:yimei:stewards" in html
        assert "bl:shipin:operators" not in html


@pytest.mark.parametrize("model_name", ["businessline", "brand"])
@pytest.mark.parametrize("role", ["steward", "operator", "analyst"])
def test_others_are_refused_the_object_permissions_pages(world, model_name, role):
    obj = container(world, model_name)
    client = login(getattr(world, role))
    group = world.operator.groups.get(name="bl:yimei:operators")
    for url in (
        permissions_url(obj),
        f"{permissions_url(obj)}user-manage/{world.nobody.pk}/",
        f"{permissions_url(obj)}group-manage/{group.pk}/",
    ):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "bl:yimei:operators" not in response.content.decode()


def test_steward_cannot_grant_through_the_object_permissions_page(world):
    line = world.own_line
    url = f"{permissions_url(line)}user-manage/{world.nobody.pk}/"
    response = login(world.steward).post(url, {"permissions": ["view_businessline", "change_businessline"]})
    assert response.status_code == 403
    assert get_perms(world.nobody, line) == []


def test_admin_grants_a_business_line_to_a_user(world):
    newcomer = UserFactory(username="op2", role=OPERATOR)
    client = login(newcomer)
    assert world.own_tag.code not in client.get("/admin/catalog/tag/").content.decode()

    url = f"{permissions_url(world.own_line)}user-manage/{newcomer.pk}/"
    admin = login(world.admin)
    assert admin.get(url).status_code == 200
    response = admin.post(url, {"permissions": ["view_businessline", "change_businessline"]})
    assert response.status_code == 302
    assert set(get_perms(newcomer, world.own_line)) == {"view_businessline", "change_businessline"}
    # the newcomer now sees the business line's tags, and still not the other line's
    html = login(newcomer).get("/admin/catalog/tag/").content.decode()
    assert world.own_tag.code in html
    assert world.other_tag.code not in html


@pytest.mark.parametrize("model_name", ["businessline", "brand"])
@pytest.mark.parametrize("role", ["admin", "steward", "operator"])
def test_object_permissions_link_is_for_the_admin_only(world, model_name, role):
    obj = container(world, model_name)
    response = login(getattr(world, role)).get(f"/admin/catalog/{model_name}/{obj.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert str(obj) in html
    link = re.search(r'<a href="permissions/"[^>]*>Object permissions</a>', html)
    assert bool(link) is (role == "admin")


def test_no_object_permissions_link_on_the_add_form(world):
    html = login(world.admin).get("/admin/catalog/brand/add/").content.decode()
    assert "Object permissions" not in html


@pytest.mark.parametrize("role", ["operator", "steward"])
def test_tag_object_permissions_page_is_refused_to_non_admins(world, role):
    """Grants are managed by admins only, on tags as on business lines and brands."""
    response = login(getattr(world, role)).get(permissions_url(world.own_tag))
    assert response.status_code == 403


def test_operator_cannot_grant_a_tag_to_someone_else(world):
    outsider = UserFactory(username="outsider", role=OPERATOR, grants=[(world.other_line, "operators")])
    tag = world.own_tag
    url = f"{permissions_url(tag)}user-manage/{outsider.pk}/"
    login(world.operator).post(url, {"permissions": ["view_tag", "change_tag"]})
    assert get_perms(outsider, tag) == []
    assert tag.code not in login(outsider).get("/admin/catalog/tag/").content.decode()


# --- applying an industry template -------------------------------------------------------------


@pytest.fixture
def pack():
    packs = available_packs()
    assert packs, "no industry template pack in fixtures/templates"
    return packs.get("medical_aesthetics") or packs[sorted(packs)[0]]


def action_data(brands, **extra):
    return {"action": "apply_template_action", "_selected_action": [str(b.pk) for b in brands], **extra}


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_admin_gets_the_intermediate_page(world, pack):
    client = login(world.admin)
    changelist = client.get(BRANDS_URL).content.decode()
    assert 'value="apply_template_action"' in changelist
    assert "Apply an industry template" in changelist

    response = client.post(BRANDS_URL, action_data([world.own_brand]))
    assert response.status_code == 200
    assert response.templates[0].name == "admin/catalog/brand/apply_template.html"
    html = response.content.decode()
    assert "瑞颜 (医美)" in html
    assert "清泉" not in html  # only the selected brand
    assert f'<option value="{pack.key}"' in html
    assert f"{pack.name} · {pack.name_en} ({len(pack.tags)})" in html
    assert f'name="_selected_action" value="{world.own_brand.pk}"' in html
    assert 'name="apply" value="1"' in html
    assert not Tag.objects.filter(brand=world.own_brand, template=pack.key).exists()


@pytest.mark.slow
def test_admin_applies_a_template_and_applying_twice_creates_nothing(world, pack):
    client = login(world.admin)
    brand = world.own_brand
    before = Tag.objects.filter(brand=brand).count()

    response = client.post(BRANDS_URL, action_data([brand], apply="1", template=pack.key))
    assert response.status_code == 302
    created = Tag.objects.filter(brand=brand, template=pack.key)
    assert created.count() == len(pack.tags)
    assert Tag.objects.filter(brand=brand).count() == before + len(pack.tags)
    assert set(created.values_list("status", flat=True)) == {"published"}
    assert all(code.startswith("yimei_") for code in created.values_list("code", flat=True))
    assert set(created.values_list("owner", flat=True)) == {world.admin.pk}
    assert Tag.objects.filter(brand=world.other_brand).count() == 1  # other brands untouched
    assert f"瑞颜: {len(pack.tags)} tags created, 0 already there." in messages_of(response)

    response = client.post(BRANDS_URL, action_data([brand], apply="1", template=pack.key))
    assert response.status_code == 302
    assert Tag.objects.filter(brand=brand).count() == before + len(pack.tags)
    assert f"瑞颜: 0 tags created, {len(pack.tags)} already there." in messages_of(response)


def test_confirming_an_unknown_template_shows_the_form_again(world, pack):
    client = login(world.admin)
    response = client.post(BRANDS_URL, action_data([world.own_brand], apply="1", template="no_such_pack"))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Tag.objects.filter(brand=world.own_brand).exclude(pk=world.own_tag.pk).exists()


def test_operator_does_not_get_the_action(world, pack):
    client = login(world.operator)
    response = client.get(BRANDS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "瑞颜" in html  # the operator sees the brand...
    assert "apply_template_action" not in html  # ...but not the action
    action_form = response.context.get("action_form")
    if action_form is not None:
        assert "apply_template_action" not in dict(action_form.fields["action"].choices)

    before = Tag.objects.count()
    response = client.post(BRANDS_URL, action_data([world.own_brand]))
    assert "admin/catalog/brand/apply_template.html" not in [t.name for t in response.templates]
    client.post(BRANDS_URL, action_data([world.own_brand], apply="1", template=pack.key))
    assert Tag.objects.count() == before


@pytest.mark.slow
def test_steward_applies_a_template_to_an_own_brand(world, pack):
    """Stewards own templates (their role holds catalog.apply_template) and are granted the business line."""
    client = login(world.steward)
    assert 'value="apply_template_action"' in client.get(BRANDS_URL).content.decode()
    response = client.post(BRANDS_URL, action_data([world.own_brand], apply="1", template=pack.key))
    assert response.status_code == 302
    assert messages_of(response) == [f"瑞颜: {len(pack.tags)} tags created, 0 already there."]
    assert Tag.objects.filter(brand=world.own_brand, template=pack.key).count() == len(pack.tags)


def test_steward_cannot_apply_a_template_to_another_business_lines_brand(world, pack):
    client = login(world.steward)
    response = client.post(BRANDS_URL, action_data([world.other_brand], apply="1", template=pack.key))
    assert response.status_code in (200, 302)
    assert not Tag.objects.filter(brand=world.other_brand, template=pack.key).exists()
    assert Tag.objects.filter(brand=world.other_brand).count() == 1
