import pytest
from rest_framework.test import APIClient

from tagportal.core.roles import ADMIN, ANALYST, OPERATOR, STEWARD

from .factories import BrandFactory, BusinessLineFactory, CategoryFactory, TagFactory, UserFactory


@pytest.fixture(autouse=True)
def english_by_default(settings):
    """Each test starts in the settings' language: a request with a Chinese
    Accept-Language activates Chinese for the rest of the thread."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def world(db):
    """Two business lines, each with a brand and a tag, and one user per role granted
    the first business line ("own"), plus an admin. The second one is "other"."""

    class World:
        pass

    w = World()
    w.own_line = BusinessLineFactory(code="yimei", name="医美")
    w.other_line = BusinessLineFactory(code="shipin", name="食品饮料")
    w.own_brand = BrandFactory(code="ruiyan", name="瑞颜", business_line=w.own_line)
    w.other_brand = BrandFactory(code="qingquan", name="清泉", business_line=w.other_line)
    w.category = CategoryFactory(code="visit", name="到店行为")
    w.own_tag = TagFactory(
        brand=w.own_brand, category=w.category, name="到店次数", code="yimei_visit_dao_dian_ci_shu"
    )
    w.other_tag = TagFactory(
        brand=w.other_brand, category=w.category, name="购买次数", code="shipin_visit_gou_mai_ci_shu"
    )
    w.operator = UserFactory(username="op", role=OPERATOR, grants=[(w.own_line, "operators")])
    w.steward = UserFactory(username="st", role=STEWARD, grants=[(w.own_line, "stewards")])
    w.analyst = UserFactory(username="an", role=ANALYST, grants=[(w.own_line, "analysts")])
    w.admin = UserFactory(username="ad", role=ADMIN)
    w.nobody = UserFactory(username="nobody")
    return w


@pytest.fixture
def api():
    return APIClient()


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client
