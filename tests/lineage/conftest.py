import datetime as dt

import pytest

from .factories import DataFieldFactory, DataSourceFactory

UTC = dt.UTC
#: The moment "now" is frozen at in these tests: 2026-11-21 12:00 Beijing time.
NOW = dt.datetime(2026, 11, 21, 4, 0, tzinfo=UTC)


@pytest.fixture
def now(monkeypatch):
    """Freeze ``timezone.now()`` at :data:`NOW`."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def make_lineage(world):
    """A shared CRM source, a POS source of the own business line and a Tmall source of
    the other one, with a few fields each (built once per ``world``)."""
    if hasattr(world, "_lineage"):
        return world._lineage

    class Lineage:
        pass

    x = Lineage()
    x.crm = DataSourceFactory(code="crm", name="CRM 会员数据", name_en="CRM members", kind="crm")
    x.pos = DataSourceFactory(
        code="yimei-pos", name="门店收银", name_en="Store POS", kind="pos", business_line=world.own_line
    )
    x.tmall = DataSourceFactory(
        code="shipin-tmall",
        name="天猫旗舰店",
        name_en="Tmall store",
        kind="tmall",
        business_line=world.other_line,
    )
    x.member_level = DataFieldFactory(source=x.crm, name="member_level", maps_to="profile.member_level")
    x.points = DataFieldFactory(source=x.crm, name="points", data_type="number", maps_to="profile.points")
    x.pos_amount = DataFieldFactory(source=x.pos, name="amount", data_type="number", maps_to="orders.amount")
    x.visit_type = DataFieldFactory(source=x.pos, name="visit_type", maps_to="events.type")
    x.tmall_amount = DataFieldFactory(
        source=x.tmall, name="pay_amount", data_type="number", maps_to="orders.amount"
    )
    world._lineage = x
    return x


@pytest.fixture
def lin(world):
    """:func:`make_lineage` as a fixture."""
    return make_lineage(world)
