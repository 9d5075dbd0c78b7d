"""The lineage page: a Plotly Sankey of what the user may view, plotly.js served locally."""

import json
import re

import pytest

from tagportal.lineage.models import DataSource

from .conftest import NOW
from .factories import metric_tag, reading_tag


def labels(response):
    figure = response.context["figure"]
    assert figure is not None
    (trace,) = figure["data"]
    return trace, list(trace["node"]["label"])


def escaped(text):
    """How a label appears inside the figure's JSON in the HTML."""
    return json.dumps(text)[1:-1]


@pytest.fixture
def graph(world, lin):
    spend = metric_tag(
        world.own_brand, world.category, "yimei_visit_spend", "orders", "amount", name="累计消费"
    )
    derived = reading_tag(world.own_brand, world.category, "yimei_visit_spend2", spend, name="消费等级")
    other = metric_tag(
        world.other_brand, world.category, "shipin_visit_spend", "orders", "amount", name="食品消费"
    )
    return spend, derived, other


@pytest.mark.django_db
@pytest.mark.usefixtures("graph")
def test_the_page_draws_a_sankey_of_visible_objects_only(client, world, lin):
    client.force_login(world.operator)
    response = client.get("/lineage/")
    assert response.status_code == 200
    html = response.content.decode()
    trace, names = labels(response)
    assert trace["type"] == "sankey"
    assert '"type":"sankey"' in html.replace(" ", "")
    assert {"累计消费", "消费等级", world.own_tag.name, "门店收银", "yimei-pos.amount"} <= set(names)
    assert "食品消费" not in names and world.other_tag.name not in names and "天猫旗舰店" not in names
    assert escaped("累计消费") in html and escaped("食品消费") not in html
    # plotly.js comes from our own static files, never from a CDN.
    assert "/static/plotly/plotly.min.js" in html
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", html)
    assert "cdn.plot.ly" not in html


@pytest.mark.django_db
def test_the_admin_sees_every_business_line(client, world, lin, graph):
    client.force_login(world.admin)
    _trace, names = labels(client.get("/lineage/", {"business_line": "all"}))
    # Tags of several brands are drawn: their labels name the brand.
    assert {"累计消费 · 瑞颜", "食品消费 · 清泉", "天猫旗舰店"} <= set(names)


@pytest.mark.django_db
def test_filters_by_business_line_and_brand(client, world, lin, graph):
    client.force_login(world.admin)
    _trace, names = labels(client.get("/lineage/", {"business_line": world.other_line.pk}))
    assert "食品消费" in names and "累计消费" not in names
    _trace, names = labels(client.get("/lineage/", {"brand": world.own_brand.pk}))
    assert "累计消费" in names and "食品消费" not in names


@pytest.mark.django_db
def test_the_impact_page_focuses_on_one_node(client, world, lin, graph):
    spend, _derived, _other = graph
    client.force_login(world.operator)
    response = client.get("/lineage/impact/", {"tag": spend.pk})
    assert response.status_code == 200
    _trace, names = labels(response)
    assert sorted(names) == sorted(["累计消费", "消费等级"])
    assert "1 tag depends on" in response.content.decode()
    _trace, names = labels(client.get("/lineage/impact/", {"field": lin.pos_amount.pk}))
    assert set(names) == {"门店收银", "yimei-pos.amount", "累计消费", "消费等级"}
    _trace, names = labels(client.get("/lineage/impact/", {"source": "yimei-pos"}))
    assert world.own_tag.name in names and "累计消费" in names


@pytest.mark.django_db
def test_focusing_on_what_the_user_may_not_view_is_404(client, world, lin, graph):
    client.force_login(world.operator)
    assert client.get("/lineage/impact/", {"tag": graph[2].pk}).status_code == 404
    assert client.get("/lineage/impact/", {"source": "shipin-tmall"}).status_code == 404


@pytest.mark.django_db
def test_stale_sources_and_their_tags_are_red_with_the_reason(client, world, lin, graph, now):
    spend, derived, _other = graph
    DataSource.objects.filter(pk=lin.crm.pk).update(last_loaded_at=NOW)  # fresh; the POS never loaded
    client.force_login(world.operator)
    response = client.get("/lineage/")
    trace, names = labels(response)
    colors = dict(zip(names, trace["node"]["color"], strict=True))
    assert colors["门店收银"] == "#c62828"
    assert colors["累计消费"] == colors["消费等级"] == "#ef5350"
    rows = response.context["stale_rows"]
    assert [row["source"].code for row in rows] == ["yimei-pos"]
    assert rows[0]["reason"] == "门店收银 has never been loaded, SLA 24 h"
    assert {t.code for t in rows[0]["tags"]} == {world.own_tag.code, spend.code, derived.code}
    html = response.content.decode()
    assert "门店收银 has never been loaded, SLA 24 h" in html and "tp-stale-sources" in html


@pytest.mark.django_db
def test_an_empty_lineage_says_so(client, world):
    client.force_login(world.operator)
    response = client.get("/lineage/")
    assert response.status_code == 200
    assert response.context["figure"] is None
    assert "No lineage to draw yet" in response.content.decode()


@pytest.mark.django_db
def test_the_page_needs_a_login(client, world):
    response = client.get("/lineage/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_the_page_and_choices_speak_chinese(client, world, lin):
    from django.utils import translation

    from tagportal.lineage.models import SourceKind

    with translation.override("zh-hans"):
        assert str(SourceKind.WECOM.label) == "企业微信"
        assert str(DataSource._meta.get_field("kind").verbose_name) == "数据源类型"
    client.force_login(world.operator)
    html = client.get("/lineage/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "数据血缘" in html and "已过期的数据源" in html
