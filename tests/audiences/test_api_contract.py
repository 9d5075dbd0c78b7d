"""The API contract (tests/api/contract.py) of audiences: create, read, patch (no PUT)
and delete, which archives."""

from __future__ import annotations

import pytest

from tagportal.audiences import services
from tagportal.audiences.models import Audience, AudienceStatus

from ..api.contract import (
    CreateContract,
    DeleteContract,
    ReadContract,
    ReadOnlyRoleContract,
    Resource,
    ScopedContract,
    ScopedWriteContract,
    UnauthenticatedWriteContract,
    UpdateContract,
    once,
)
from ..conftest import client_for
from .test_services import EXPRESSION, OILY


class TestAudiences(
    Resource,
    ReadContract,
    ScopedContract,
    CreateContract,
    UpdateContract,
    DeleteContract,
    ScopedWriteContract,
    UnauthenticatedWriteContract,
    ReadOnlyRoleContract,
):
    url = "/api/audiences/audiences/"
    model = Audience

    @pytest.fixture(autouse=True)
    def _shop(self, world, shop):
        """The own brand's people and computed tags (tests/audiences/conftest.py)."""
        world.shop = shop

    def user(self, world):
        return world.operator

    def permitted(self, world):
        return once(
            world,
            "_own_audience",
            lambda: services.create_audience(
                world.operator, brand=world.own_brand, name="油皮近访客", expression=EXPRESSION
            ),
        )

    def other(self, world):
        return once(
            world,
            "_other_audience",
            lambda: Audience.objects.create(
                name="清泉复购",
                brand=world.other_brand,
                business_line=world.other_line,
                owner=world.admin,
                expression={"tag": world.other_tag.code, "op": "is_set"},
            ),
        )

    def create_data(self, world):
        return {
            "brand": world.own_brand.code,
            "name": "近访油皮",
            "description": "近30天到店的油皮客户",
            "expression": EXPRESSION,
            "refresh_every_hours": 24,
        }

    def update_data(self, world):
        return {"name": "新名字", "description": "改过的说明", "refresh_on_recompute": False}

    def deletable(self, world, user):
        return services.create_audience(user, brand=world.own_brand, name="油皮", expression=OILY)

    def assert_deleted(self, world, user, obj):
        """Deleting archives: the audience and its snapshots stay, marked archived."""
        obj.refresh_from_db()
        assert obj.status == AudienceStatus.ARCHIVED
        assert obj.snapshots.count() == 1
        archived = client_for(user).get(self.url, {"status": "archived"})
        assert obj.pk in self.keys(archived)

    def test_put_is_not_offered(self, world):
        audience = self.permitted(world)
        before = self.snapshot(audience)
        response = client_for(world.admin).put(
            self.detail_url(audience.pk), self.create_data(world), format="json"
        )
        assert response.status_code == 405
        assert self.snapshot(audience) == before
