"""Role × action × own/other brand, through the one scoping entry point and the API."""

import pytest

from tagportal.catalog.models import Tag
from tagportal.core.permissions import may

from ..conftest import client_for

# role -> (view own, change own, delete own, add in own brand)
MATRIX = {
    "operator": (True, True, False, True),
    "steward": (True, True, True, True),
    "analyst": (True, False, False, False),
    "admin": (True, True, True, True),
    "nobody": (False, False, False, False),
}


def _tag_payload(world, brand):
    return {
        "name": "复购意向",
        "name_en": "Repurchase intent",
        "brand": brand.code,
        "category": world.category.pk,
        "kind": "behavior",
        "value_type": "boolean",
        "definition": {
            "type": "condition",
            "condition": {
                "metric": {"agg": "count", "source": "orders", "window": {"last_days": 30}},
                "op": "gte",
                "value": 2,
            },
        },
    }


@pytest.mark.parametrize("role", MATRIX)
def test_restrict_matrix(world, role):
    user = getattr(world, role)
    view, change, delete, _add = MATRIX[role]
    visible = set(Tag.objects.restrict(user, "view"))
    assert (world.own_tag in visible) is view
    assert may(user, world.own_tag, "change") is change
    assert may(user, world.own_tag, "delete") is delete
    # Another business line's tag: only the admin reaches it.
    other = role == "admin"
    assert (world.other_tag in visible) is other
    assert may(user, world.other_tag, "change") is (other and change)
    assert may(user, world.other_tag, "delete") is (other and delete)


@pytest.mark.parametrize("role", MATRIX)
def test_api_matrix(world, role):
    user = getattr(world, role)
    view, change, delete, add = MATRIX[role]
    client = client_for(user)
    listing = client.get("/api/catalog/tags/")
    if role == "nobody":
        assert listing.status_code == 403
    else:
        assert listing.status_code == 200
        codes = {t["code"] for t in listing.json()["results"]}
        assert (world.own_tag.code in codes) is view
        assert (world.other_tag.code in codes) is (role == "admin")

    own = client.get(f"/api/catalog/tags/{world.own_tag.pk}/")
    assert own.status_code == (200 if view else 403 if role == "nobody" else 404)
    other = client.get(f"/api/catalog/tags/{world.other_tag.pk}/")
    assert other.status_code == (200 if role == "admin" else 403 if role == "nobody" else 404)

    patch = client.patch(f"/api/catalog/tags/{world.own_tag.pk}/", {"description": "改过了"}, format="json")
    assert patch.status_code == (200 if change else 403)
    world.own_tag.refresh_from_db()
    assert (world.own_tag.description == "改过了") is change

    other_patch = client.patch(
        f"/api/catalog/tags/{world.other_tag.pk}/", {"description": "越权"}, format="json"
    )
    assert other_patch.status_code == (
        200 if role == "admin" else 403 if role in ("analyst", "nobody") else 404
    )

    created = client.post("/api/catalog/tags/", _tag_payload(world, world.own_brand), format="json")
    assert created.status_code == (201 if add else 403), created.content
    created_other = client.post("/api/catalog/tags/", _tag_payload(world, world.other_brand), format="json")
    if role == "admin":
        assert created_other.status_code == 201
    elif add:
        # another business line's brand reads as unknown: nothing leaks, nothing is saved
        assert created_other.status_code == 400
        assert "brand" in created_other.json()
    else:
        assert created_other.status_code == 403
    assert Tag.objects.filter(brand=world.other_brand, name="复购意向").exists() is (role == "admin")

    deleted = client.delete(f"/api/catalog/tags/{world.other_tag.pk}/")
    assert deleted.status_code == (204 if role == "admin" else 403 if not delete else 404)
    own_delete = client.delete(f"/api/catalog/tags/{world.own_tag.pk}/")
    assert own_delete.status_code == (204 if delete else 403)


def test_brand_grant_covers_only_that_brand(world):
    from ..factories import BrandFactory, TagFactory, UserFactory

    sister = BrandFactory(code="ruiyan2", business_line=world.own_line)
    sister_tag = TagFactory(brand=sister, category=world.category)
    user = UserFactory(username="brand_op", role="operator")
    from guardian.shortcuts import assign_perm

    assign_perm("catalog.view_brand", user, world.own_brand)
    visible = set(Tag.objects.restrict(user, "view"))
    assert world.own_tag in visible
    assert sister_tag not in visible
    assert not may(user, world.own_tag, "change")
    # the brand grant also shows its business line (read-only)
    from tagportal.catalog.models import BusinessLine

    assert list(BusinessLine.objects.restrict(user, "view")) == [world.own_line]
    assert list(BusinessLine.objects.restrict(user, "change")) == []


def test_single_tag_grant(world):
    from guardian.shortcuts import assign_perm

    from ..factories import UserFactory

    user = UserFactory(username="one_tag", role="analyst")
    assign_perm("catalog.view_tag", user, world.other_tag)
    assert list(Tag.objects.restrict(user, "view")) == [world.other_tag]


def test_inactive_and_anonymous_see_nothing(world):
    from django.contrib.auth.models import AnonymousUser

    world.steward.is_active = False
    world.steward.save()
    assert not Tag.objects.restrict(world.steward, "view").exists()
    assert not Tag.objects.restrict(AnonymousUser(), "view").exists()
