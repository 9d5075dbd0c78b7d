"""The lineage page's views: a business line by default, a tag search, "focus on this
tag" (two steps either way) and at most ``MAX_NODES`` nodes a view."""

import pytest

from tagportal.lineage import views

from .factories import metric_tag, reading_tag


def names_of(response) -> set[str]:
    figure = response.context["figure"]
    assert figure is not None
    (trace,) = figure["data"]
    return set(trace["node"]["label"])


@pytest.fixture
def chain(world, lin):
    """门店收银.amount → 累计消费 → 消费等级 → 等级二 → 等级三, and a food tag."""
    spend = metric_tag(
        world.own_brand, world.category, "yimei_chain_spend", "orders", "amount", name="累计消费"
    )
    level = reading_tag(world.own_brand, world.category, "yimei_chain_level", spend, name="消费等级")
    second = reading_tag(world.own_brand, world.category, "yimei_chain_second", level, name="等级二")
    third = reading_tag(world.own_brand, world.category, "yimei_chain_third", second, name="等级三")
    food = metric_tag(
        world.other_brand, world.category, "shipin_chain_spend", "orders", "amount", name="食品消费"
    )
    return spend, level, second, third, food


@pytest.mark.django_db
def test_with_no_filter_the_admin_sees_the_first_business_line_only(client, world, chain):
    client.force_login(world.admin)
    response = client.get("/lineage/")
    assert response.status_code == 200
    first = response.context["shown_line"]
    assert first is not None and response.context["defaulted"]
    names = {name.split(" · ")[0] for name in names_of(response)}
    drawn_food = "食品消费" in names
    drawn_beauty = "累计消费" in names
    assert drawn_food != drawn_beauty  # one business line, not both
    assert 'id="tp-lineage-default"' in response.content.decode()
    everything = {
        name.split(" · ")[0] for name in names_of(client.get("/lineage/", {"business_line": "all"}))
    }
    assert {"食品消费", "累计消费"} <= everything


@pytest.mark.django_db
def test_focus_shows_the_tag_what_it_reads_and_what_reads_it_two_steps_away(client, world, lin, chain):
    spend, level, second, third, _food = chain
    fourth = reading_tag(world.own_brand, world.category, "yimei_chain_fourth", third, name="等级四")
    client.force_login(world.operator)
    response = client.get("/lineage/", {"focus": second.pk})
    assert response.status_code == 200
    names = names_of(response)
    assert {"等级二", "消费等级", "累计消费", "等级三", "等级四"} <= names
    assert "yimei-pos.amount" not in names and world.own_tag.name not in names
    assert "等级二" in response.context["title"]
    (trace,) = response.context["figure"]["data"]
    outlines = dict(zip(trace["node"]["label"], trace["node"]["line"]["color"], strict=True))
    assert outlines["等级二"] == "#000000" and outlines["等级三"] != "#000000"  # the tag stands out
    focus_on_level = names_of(client.get("/lineage/", {"focus": level.pk}))
    assert {"消费等级", "累计消费", "yimei-pos.amount", "等级二", "等级三"} <= focus_on_level
    assert "门店收银" not in focus_on_level and "等级四" not in focus_on_level
    assert len(focus_on_level) <= views.MAX_NODES
    assert fourth.pk and spend.pk
    # another line's tag cannot be focused on
    assert client.get("/lineage/", {"focus": chain[4].pk}).status_code == 404
    assert client.get("/lineage/", {"focus": "x"}).status_code == 404


@pytest.mark.django_db
def test_search_lists_the_tags_found_with_a_focus_link(client, world, chain):
    client.force_login(world.operator)
    response = client.get("/lineage/", {"q": "等级三"})
    assert response.status_code == 200
    assert [tag.code for tag in response.context["found"]] == ["yimei_chain_third"]
    assert {"等级三", "等级二"} <= names_of(response)
    assert "累计消费" not in names_of(response)
    assert f'?focus={chain[3].pk}"' in response.content.decode()
    nothing = client.get("/lineage/", {"q": "食品消费"})  # the other line's tag is not found
    assert nothing.context["found"] == [] and nothing.context["figure"] is None


def fed(response) -> set[str]:
    """The labels of the nodes something flows into."""
    (trace,) = response.context["figure"]["data"]
    return {trace["node"]["label"][i].split(" · ")[0] for i in trace["link"]["target"]}


@pytest.mark.django_db
def test_a_view_draws_at_most_max_nodes_and_says_so(client, world, chain, monkeypatch):
    client.force_login(world.admin)
    whole = client.get("/lineage/", {"business_line": "all"})
    assert not whole.context["cut"]
    monkeypatch.setattr(views, "MAX_NODES", 5)
    response = client.get("/lineage/", {"business_line": "all"})
    assert response.status_code == 200
    drawn = {name.split(" · ")[0] for name in names_of(response)}
    assert 0 < len(drawn) <= 5
    assert response.context["cut"] and response.context["total"] == len(names_of(whole)) > 5
    assert 'id="tp-lineage-cut"' in response.content.decode()
    # whole chains are kept: a drawn node fed in the whole graph is fed in the cut one
    assert drawn & fed(whole) == fed(response)
