"""The algorithm model pages: the list (scoped to the brands the user reaches, filtered by
brand and kind), a model's page with its runs and the charts of each kind, "run now"
(who may, CSRF), the figures built from stored runs, and the Chinese labels."""

from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from tagportal.predictive import figures as fg
from tagportal.predictive import services, views
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelRun, PredictiveModel

from .test_registry import AS_OF, FRAMES, make_model


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_figures(response) -> dict:
    match = re.search(r'<script id="tp-figures" type="application/json">(.*?)</script>', response.text, re.S)
    assert match, "the page carries no figures"
    return json.loads(match.group(1))


def other_brand_model(world) -> PredictiveModel:
    return PredictiveModel.objects.create(brand=world.other_brand, kind="rfm", name="清泉 RFM")


def test_the_list_shows_only_the_models_of_brands_the_user_reaches(world):
    own = make_model(world, "rfm", name="瑞颜 RFM")
    services.run_model(own, as_of=AS_OF, frames=FRAMES)
    other = other_brand_model(world)
    response = client_for(world.analyst).get("/models/")
    assert response.status_code == 200
    assert f'data-model="{own.pk}"' in response.text
    assert f'data-model="{other.pk}"' not in response.text and "清泉 RFM" not in response.text
    assert "Published" in response.text  # the last run's status
    assert "customers" in response.text  # the key figure of an RFM run
    segment = own.outputs.get(key="segment").tag
    assert f"/admin/catalog/tag/{segment.pk}/change/" in response.text
    # The admin sees both; the other brand's model page answers 404 to the analyst.
    everything = client_for(world.admin).get("/models/")
    assert f'data-model="{other.pk}"' in everything.text
    assert client_for(world.analyst).get(f"/models/{other.pk}/").status_code == 404
    assert client_for(world.analyst).post(f"/models/{other.pk}/run/").status_code == 404


def test_the_list_filters_by_brand_and_kind(world):
    rfm = make_model(world, "rfm", name="RFM")
    aipl = make_model(world, "aipl", name="AIPL")
    other = other_brand_model(world)
    client = client_for(world.admin)
    by_kind = client.get("/models/", {"kind": "aipl"}).text
    assert f'data-model="{aipl.pk}"' in by_kind and f'data-model="{rfm.pk}"' not in by_kind
    by_brand = client.get("/models/", {"brand": world.other_brand.pk}).text
    assert f'data-model="{other.pk}"' in by_brand and f'data-model="{rfm.pk}"' not in by_brand
    unknown = client.get("/models/", {"kind": "nope", "brand": "x"})
    assert unknown.status_code == 200 and f'data-model="{rfm.pk}"' in unknown.text
    assert "never run" in unknown.text


EXPECTED_FIGURES = {
    "rfm": {"segments", "scores"},
    "clv": {"intent_levels", "intent", "clv"},
    "aipl": {"stages", "sankey"},
    "churn": {"calibration", "lift", "importances", "candidates", "levels"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_FIGURES))
def test_a_model_page_shows_its_runs_and_the_charts_of_its_kind(world, kind):
    model = make_model(world, kind, schedule="0 3 * * *", metric_floor=0.1 if kind == "churn" else None)
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED, run.error
    response = client_for(world.analyst).get(f"/models/{model.pk}/")
    assert response.status_code == 200
    text = response.text
    assert f'data-run="{run.pk}"' in text and 'class="tp-selected"' in text
    assert "<code>0 3 * * *</code>" in text
    assert "MB" in text and f">{run.people_scored}<" in text
    for output in model.outputs.all():
        assert f"/admin/catalog/tag/{output.tag.pk}/change/" in text
    figures = page_figures(response)
    assert EXPECTED_FIGURES[kind] <= set(figures)
    for name in figures:
        assert f'data-figure="{name}"' in text
        assert figures[name]["data"], name  # every figure drawn has data
    if kind == "churn":
        assert "did not store the points of its ROC curve" not in text and "roc" in figures
        assert f"AUC {run.key_metric:.3f}" in text
    assert "Run now" not in text  # an analyst may not run


def test_the_parameter_history_draws_what_changed_across_runs(world):
    model = make_model(world, "clv")
    first = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    second = services.run_model(model, as_of=AS_OF.replace(day=20, month=2), frames=FRAMES)
    assert {first.status, second.status} == {ModelRunStatus.PUBLISHED}
    client = client_for(world.steward)
    figures = page_figures(client.get(f"/models/{model.pk}/"))
    assert "history" in figures
    titles = {a["text"] for a in figures["history"]["layout"]["annotations"]}
    assert "bgnbd.r" in titles
    # An older run: its own metrics, and the distributions only for the published tags' run.
    older = client.get(
        f"/models/{model.pk}/", {"run": first.pk if first.started_at < second.started_at else second.pk}
    )
    assert "open the last published run" in older.text
    assert client.get(f"/models/{model.pk}/", {"run": 999999}).status_code == 404


def test_a_failed_run_shows_its_error(world):
    model = make_model(world, "clv")
    run = services.run_model(model, as_of=AS_OF, frames={"profiles": None, "events": None, "orders": None})
    assert run.status == ModelRunStatus.FAILED
    text = client_for(world.analyst).get(f"/models/{model.pk}/").text
    assert "Failed" in text and "no orders" in text


def test_run_now_needs_the_run_permission_and_queues_a_run(world, monkeypatch):
    queued = []
    monkeypatch.setattr(views.services, "request_run", lambda model, as_of=None: queued.append(model.pk))
    model = make_model(world, "rfm")
    assert client_for(world.analyst).post(f"/models/{model.pk}/run/").status_code == 403
    assert client_for(world.operator).post(f"/models/{model.pk}/run/").status_code == 403
    assert queued == []
    steward = client_for(world.steward)
    assert 'id="tp-run-now"' in steward.get(f"/models/{model.pk}/").text
    response = steward.post(f"/models/{model.pk}/run/", follow=True)
    assert response.redirect_chain[-1] == (f"/models/{model.pk}/", 302)
    assert queued == [model.pk]
    assert "is queued" in response.text
    assert steward.get(f"/models/{model.pk}/run/").status_code == 405


def test_run_now_needs_the_csrf_token(world, monkeypatch):
    monkeypatch.setattr(views.services, "request_run", lambda model, as_of=None: None)
    model = make_model(world, "rfm")
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.steward)
    assert client.post(f"/models/{model.pk}/run/").status_code == 403


def test_the_pages_need_a_login(world):
    model = make_model(world, "rfm")
    for url in ("/models/", f"/models/{model.pk}/"):
        response = Client().get(url)
        assert response.status_code == 302 and "login" in response["Location"]


def test_the_pages_speak_chinese_and_show_beijing_time(world):
    model = make_model(world, "churn", metric_floor=0.999)
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.HELD
    client = client_for(world.steward)
    listing = client.get("/models/", HTTP_ACCEPT_LANGUAGE="zh-hans").text
    assert '<a href="/models/">算法模型</a>' in listing  # the portal navigation
    for label in ("算法模型", "流失预警", "暂缓待审", "品牌", "类型", "关键指标"):
        assert label in listing, label
    page = client.get(f"/models/{model.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    for label in ("运行历史", "立即运行", "输出标签"):
        assert label in page.text, label
    figures = page_figures(page)
    assert figures["calibration"]["layout"]["title"]["text"].startswith("校准曲线")
    assert figures["lift"]["layout"]["title"]["text"].startswith("按十分位的提升度")
    assert "ROC" in figures["roc"]["layout"]["title"]["text"]
    started = ModelRun.objects.get(pk=run.pk).started_at
    beijing = started.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert beijing in page.text


# ---------------------------------------------------------------------------------------------
# Figures from stored data


def test_the_lift_by_decile_comes_from_the_calibration_bins():
    curve = {"mean_predicted": [0.1, 0.3, 0.7], "fraction_positive": [0.05, 0.2, 0.8]}
    assert fg.lift_by_bin(curve, 0.4) == pytest.approx([2.0, 0.5, 0.125])
    assert fg.lift_by_bin(curve, 0) == []
    figure = fg.lift_figure(fg.lift_by_bin(curve, 0.4), 2.0)
    assert list(figure.data[0].y) == pytest.approx([2.0, 0.5, 0.125])


def test_a_stored_roc_curve_is_drawn_and_a_missing_one_is_not():
    charts = {"roc_curve": {"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1]}}
    figures = fg.run_figures("churn", {"validation": {"auc": 0.8}}, charts)
    assert list(figures["roc"].data[1].x) == [0, 0.2, 1]
    assert "AUC 0.800" in figures["roc"].layout.title.text
    assert "roc" not in fg.run_figures("churn", {"validation": {"auc": 0.8}}, {})
    assert fg.roc_points({}, {"roc_curve": {"fpr": [0], "tpr": [0]}}) is None


def test_the_parameter_history_needs_two_runs_and_a_change():
    one = {"label": "a", "parameters": {"bgnbd": {"r": 0.2, "alpha": 4.0}}, "key_metric": None}
    same = {**one, "label": "b"}
    changed = {"label": "c", "parameters": {"bgnbd": {"r": 0.3, "alpha": 4.0}}, "key_metric": None}
    assert fg.parameter_history([one]) is None
    assert fg.parameter_history([one, same]) is None
    figure = fg.parameter_history([one, changed])
    assert [a.text for a in figure.layout.annotations] == ["bgnbd.r"]
    assert list(figure.data[0].y) == [0.2, 0.3]
