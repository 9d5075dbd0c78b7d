"""An algorithm model of the registry is a node of the lineage graph: the data fields its
kind reads → the model → its output tags (and what reads those)."""

import datetime as dt

import networkx as nx
import pytest
from django.core.exceptions import ValidationError

from tagportal.catalog.models import Tag
from tagportal.lineage import services
from tagportal.lineage.models import DataSource, ModelInput
from tagportal.predictive.choices import KIND_SHORT_LABELS
from tagportal.predictive.models import ModelOutput, ModelRun, PredictiveModel
from tagportal.predictive.services import ensure_outputs

from ..conftest import client_for
from .conftest import NOW
from .factories import DataFieldFactory, metric_tag, reading_tag


def make_model(brand, name="RFM 分层", kind="rfm", user=None) -> PredictiveModel:
    model = PredictiveModel(brand=brand, kind=kind, name=name, created_by=user)
    model.full_clean()
    model.save()
    ensure_outputs(model)
    return model


@pytest.fixture
def rfm(world, lin):
    """An RFM model of the own brand, the POS's order time field and a composite tag
    reading the model's segment tag."""
    lin.pos_time = DataFieldFactory(source=lin.pos, name="paid_at", data_type="date", maps_to="orders.time")
    model = make_model(world.own_brand, user=world.steward)
    outputs = {o.key: o.tag for o in model.outputs.select_related("tag")}
    reader = reading_tag(
        world.own_brand, world.category, "yimei_visit_reads_r", outputs["r"], name="R 分复核"
    )
    return model, outputs, reader


@pytest.mark.django_db
def test_an_output_tag_has_the_model_and_the_order_fields_upstream(world, lin, rfm):
    model, outputs, _reader = rfm
    found = services.upstream(outputs["segment"])
    assert found.models == [model]
    # The own line's order amount and time; the other line's Tmall amount is not read.
    assert set(found.fields) == {lin.pos_amount, lin.pos_time}
    assert found.sources == [lin.pos]
    assert found.tags == []
    assert set(ModelInput.objects.filter(model=model).values_list("field_id", flat=True)) == {
        lin.pos_amount.pk,
        lin.pos_time.pk,
    }


@pytest.mark.django_db
def test_impact_of_the_order_amount_includes_the_model_its_tags_and_their_readers(world, lin, rfm):
    model, outputs, reader = rfm
    found = services.impact(lin.pos_amount)
    assert found.models == [model]
    assert {t.pk for t in found.tags} == {t.pk for t in outputs.values()} | {reader.pk}
    assert {found.depth[t.pk] for t in outputs.values()} == {1}  # the model adds no tag hop
    assert found.depth[reader.pk] == 2
    assert services.impact(lin.pos).models == [model]
    # Deleting the field is refused: the model's output tags would lose an input.
    with pytest.raises(services.DependentsExist):
        services.delete_field(None, lin.pos_amount)


@pytest.mark.django_db
def test_a_stale_source_makes_the_model_output_tags_stale(world, lin, rfm, now):
    _model, outputs, reader = rfm
    DataSource.objects.filter(pk=lin.crm.pk).update(last_loaded_at=NOW)  # fresh; the POS never loaded
    stale = services.stale_tag_ids(Tag.objects.filter(brand=world.own_brand))
    assert {t.pk for t in outputs.values()} | {reader.pk} <= stale
    reasons = services.stale_reasons([outputs["m"].pk])
    assert reasons == {outputs["m"].pk: ["门店收银 has never been loaded, SLA 24 h"]}
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=NOW)
    assert not {t.pk for t in outputs.values()} & services.stale_tag_ids()


@pytest.mark.django_db
def test_a_field_added_later_and_a_changed_mapping_follow(world, lin, rfm):
    model, outputs, _reader = rfm
    late = DataFieldFactory(source=lin.crm, name="last_order_at", maps_to="orders.time")  # shared source
    assert model in services.impact(late).models
    late.maps_to = "profile.age"
    late.save()
    assert services.impact(late).models == []
    assert outputs["r"].pk not in services.impact(late).tag_ids


@pytest.mark.django_db
def test_deactivating_the_model_or_removing_an_output_updates_the_graph(world, lin, rfm):
    model, outputs, reader = rfm
    ModelOutput.objects.filter(model=model, key="r").delete()
    found = services.impact(lin.pos_amount)
    assert outputs["r"].pk not in found.tag_ids and reader.pk not in found.tag_ids
    assert outputs["m"].pk in found.tag_ids
    assert services.upstream(outputs["r"]).models == []

    model.is_active = False
    model.save()
    found = services.impact(lin.pos_amount)
    assert found.models == [] and not found.tag_ids & {t.pk for t in outputs.values()}
    assert not ModelInput.objects.filter(model=model).exists()
    model.is_active = True
    model.save()
    assert services.impact(lin.pos_amount).models == [model]


@pytest.mark.django_db
def test_the_api_lists_models_and_hides_another_brands(world, lin, rfm):
    model, outputs, _reader = rfm
    shared = DataFieldFactory(source=lin.crm, name="order_total", data_type="number", maps_to="orders.amount")
    other = make_model(world.other_brand, name="清泉 RFM")
    assert {m.pk for m in services.impact(shared).models} == {model.pk, other.pk}

    api = client_for(world.operator)
    body = api.get("/api/lineage/impact/", {"field": shared.pk}).json()
    assert [m["id"] for m in body["models"]] == [model.pk]
    assert body["models"][0]["url"] == f"/models/{model.pk}/"
    assert body["models"][0]["kind"] == "rfm"
    assert body["other_models"] == 1
    other_tag = other.outputs.first().tag
    assert other_tag.pk not in {t["id"] for t in body["tags"]}

    body = api.get("/api/lineage/impact/", {"tag": outputs["r"].pk, "direction": "upstream"}).json()
    assert [m["id"] for m in body["models"]] == [model.pk]
    assert {f["id"] for f in body["fields"]} >= {lin.pos_amount.pk, lin.pos_time.pk}
    body = api.get(f"/api/lineage/tags/{outputs['r'].pk}/inputs/").json()
    assert body["model"]["id"] == model.pk
    assert api.get(f"/api/lineage/tags/{other_tag.pk}/inputs/").status_code == 404


@pytest.mark.django_db
def test_the_page_draws_the_model_as_its_own_node_with_a_link(client, world, lin, rfm, now):
    model, outputs, _reader = rfm
    other = make_model(world.other_brand, name="清泉 RFM")
    DataSource.objects.update(last_loaded_at=NOW)  # fresh: nothing drawn red
    client.force_login(world.operator)
    response = client.get("/lineage/")
    (trace,) = response.context["figure"]["data"]
    names = list(trace["node"]["label"])
    label = "RFM 分层 · RFM"
    assert label in names and not any("清泉 RFM" in n for n in names)
    index = names.index(label)
    assert trace["node"]["color"][index] == "#7b52ab"
    assert trace["node"]["color"][names.index(outputs["r"].name)] == "#3a9a5b"
    assert response.context["node_links"][index] == f"/models/{model.pk}/"
    assert response.context["graph_models"] == [model]
    html = response.content.decode()
    assert f'href="/models/{model.pk}/"' in html and f"/models/{other.pk}/" not in html

    # The tag's lineage view: where its values come from, and what reads it.
    response = client.get("/lineage/impact/", {"tag": outputs["r"].pk})
    (trace,) = response.context["figure"]["data"]
    names = set(trace["node"]["label"])
    assert {
        label,
        outputs["r"].name,
        "R 分复核",
        "yimei-pos.amount",
        "yimei-pos.paid_at",
        "门店收银",
    } <= names
    assert outputs["m"].name not in names
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=None)  # stale: the model turns red
    (trace,) = client.get("/lineage/impact/", {"tag": outputs["r"].pk}).context["figure"]["data"]
    assert trace["node"]["color"][list(trace["node"]["label"]).index(label)] == "#ef5350"
    assert client.get("/lineage/impact/", {"tag": other.outputs.first().tag_id}).status_code == 404


@pytest.mark.django_db
def test_the_model_page_links_to_its_output_tags_lineage(client, world, lin, rfm):
    model, outputs, _reader = rfm
    client.force_login(world.steward)
    html = client.get(f"/models/{model.pk}/").content.decode()
    assert f'href="/lineage/impact/?tag={outputs["segment"].pk}"' in html


@pytest.mark.django_db
def test_check_lineage_restores_a_models_inputs(world, lin, rfm):
    from io import StringIO

    from django.core.management import call_command

    model, outputs, _reader = rfm
    ModelInput.objects.all().delete()
    out = StringIO()
    call_command("check_lineage", stdout=out)
    assert "1 algorithm models: 2 inputs added" in out.getvalue()
    assert services.upstream(outputs["r"]).models == [model]


# ---------------------------------------------------------------------------
# Tags a model reads: the ``tag:<code>`` features of its last published fit


def fit_run(model, status="published", features=(), minutes=0, **fields):
    """A run of ``model`` as the registry records it (no fitting: only what lineage reads)."""
    at = NOW + dt.timedelta(minutes=minutes)
    return ModelRun.objects.create(
        model=model, status=status, as_of=at, started_at=at, features=list(features), **fields
    )


@pytest.fixture
def churn(world, lin):
    """A churn model of the own brand, a metric tag of the POS amounts it may read as a
    feature, and the other brand's tag of the same code."""
    spend = metric_tag(world.own_brand, world.category, "yimei_spend_90d", "orders", "amount")
    same_code = metric_tag(world.other_brand, world.category, "yimei_spend_90d", "orders", "amount")
    model = make_model(world.own_brand, name="流失预警", kind="churn", user=world.steward)
    outputs = {o.key: o.tag for o in model.outputs.select_related("tag")}
    return model, outputs, spend, same_code


def read_tags(model) -> set[int]:
    return set(ModelInput.objects.filter(model=model, tag__isnull=False).values_list("tag_id", flat=True))


@pytest.mark.django_db
def test_a_published_fit_links_the_tags_it_read_to_the_model(world, lin, churn):
    model, outputs, spend, same_code = churn
    assert read_tags(model) == set()
    fit_run(model, features=["rfm_r", "recency_days", f"tag:{spend.code}", "tag:no_such_tag"])
    assert read_tags(model) == {spend.pk}  # not the other brand's tag of the same code

    found = services.impact(spend)
    assert found.models == [model]
    assert {t.pk for t in outputs.values()} <= found.tag_ids
    assert {found.depth[t.pk] for t in outputs.values()} == {1}
    assert services.tag_dependents(spend) == found.tags
    assert services.impact(same_code).models == []
    # A field under the tag reaches the model both ways: directly and through the tag.
    assert model in services.impact(lin.pos_amount).models

    up = services.upstream(outputs["churn_probability"])
    assert up.models == [model]
    assert spend.pk in up.tag_ids and same_code.pk not in up.tag_ids
    assert lin.pos_amount in up.fields


@pytest.mark.django_db
def test_only_the_last_published_fit_counts(world, lin, churn):
    model, outputs, spend, _same_code = churn
    first = fit_run(model, features=[f"tag:{spend.code}"])
    # Held, failed and scoring runs change nothing, even naming no tag at all.
    fit_run(model, status="held", features=["rfm_r"], minutes=1)
    fit_run(model, status="failed", minutes=2)
    fit_run(model, features=["rfm_r"], minutes=3, window={"scored_with_run": first.pk})
    assert read_tags(model) == {spend.pk}

    later = fit_run(model, features=["rfm_r", "recency_days"], minutes=4)
    assert read_tags(model) == set()
    assert services.impact(spend).models == []
    assert spend.pk not in services.upstream(outputs["churn_probability"]).tag_ids

    later.delete()  # the fit before speaks again
    assert read_tags(model) == {spend.pk}
    model.is_active = False
    model.save()
    assert read_tags(model) == set()


@pytest.mark.django_db
def test_a_stale_source_under_a_read_tag_makes_the_outputs_stale(world, lin, churn, now):
    model, outputs, spend, _same_code = churn
    ModelInput.objects.filter(model=model).delete()  # the model reads no field of its own here
    fit_run(model, features=[f"tag:{spend.code}"])
    assert set(ModelInput.objects.filter(model=model).values_list("field_id", flat=True)) == {None}
    DataSource.objects.update(last_loaded_at=NOW)
    assert not {t.pk for t in outputs.values()} & services.stale_tag_ids()
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=None)
    assert {t.pk for t in outputs.values()} <= services.stale_tag_ids()
    assert services.stale_reasons([outputs["churn_level"].pk]) == {
        outputs["churn_level"].pk: ["门店收银 has never been loaded, SLA 24 h"]
    }


@pytest.mark.django_db
def test_a_model_reading_a_tag_it_fills_makes_no_cycle(world, lin, churn):
    model, outputs, spend, _same_code = churn
    level = outputs["churn_level"]
    downstream = reading_tag(world.own_brand, world.category, "yimei_reads_probability", level)
    fit_run(model, features=[f"tag:{level.code}", f"tag:{downstream.code}", f"tag:{spend.code}"])
    assert read_tags(model) == {spend.pk}  # its own output and what reads it are skipped
    assert nx.is_directed_acyclic_graph(services.lineage_graph())
    assert nx.is_directed_acyclic_graph(services.lineage_graph(with_fields=False))
    # Nor can a read tag's definition come to read the model's output afterwards.
    spend.definition = {"type": "metric", "metric": {"tag": level.code}}
    with pytest.raises(ValidationError):
        services.sync_tag_inputs(spend)


@pytest.mark.django_db
def test_a_read_tag_created_later_and_check_lineage_link_it(world, lin, churn):
    from io import StringIO

    from django.core.management import call_command

    model, _outputs, _spend, _same_code = churn
    fit_run(model, features=["tag:yimei_visits_30d"])
    assert read_tags(model) == set()
    visits = metric_tag(world.own_brand, world.category, "yimei_visits_30d", "events", "amount", agg="count")
    assert read_tags(model) == {visits.pk}
    ModelInput.objects.all().delete()
    call_command("check_lineage", stdout=StringIO())
    assert read_tags(model) == {visits.pk}


@pytest.mark.django_db
def test_the_api_and_the_page_show_the_tag_model_edge(client, world, lin, churn):
    model, outputs, spend, _same_code = churn
    fit_run(model, features=[f"tag:{spend.code}"])
    api = client_for(world.operator)
    body = api.get("/api/lineage/impact/", {"tag": spend.pk}).json()
    assert [m["id"] for m in body["models"]] == [model.pk]
    assert {t["id"] for t in body["tags"]} >= {t.pk for t in outputs.values()}
    probability = outputs["churn_probability"]
    body = api.get("/api/lineage/impact/", {"tag": probability.pk, "direction": "upstream"}).json()
    assert spend.pk in {t["id"] for t in body["tags"]}

    client.force_login(world.operator)
    label = "流失预警 · " + KIND_SHORT_LABELS["churn"]
    for root in (spend, probability):
        (trace,) = client.get("/lineage/impact/", {"tag": root.pk}).context["figure"]["data"]
        names = list(trace["node"]["label"])
        edges = {
            (names[a], names[b])
            for a, b in zip(trace["link"]["source"], trace["link"]["target"], strict=True)
        }
        assert (spend.name, label) in edges and (label, probability.name) in edges
        x = trace["node"]["x"]
        assert x[names.index(spend.name)] < x[names.index(label)] < x[names.index(probability.name)]
