"""A held run of an algorithm model becomes a change request (kind ``model_run``) proposed
by the models' service account: approving and applying it publishes the run, rejecting
it leaves the run held, a later published run makes it out of date (409), a newer held
run replaces it; nobody proposes or sends back such a request by hand.

The churn model is fitted once for the module (the fit is pure); each test runs it
through the registry, whose guard holds it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from tagportal.catalog.models import TagVersion
from tagportal.engine.models import TagComputation
from tagportal.governance import model_runs
from tagportal.governance import services as gov
from tagportal.governance.choices import AuditAction, ChangeKind, RequestState
from tagportal.governance.models import AuditEvent, ChangeRequest
from tagportal.notifications.models import Notification
from tagportal.predictive import services as predictive
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelRun, PredictiveModel

from ..conftest import client_for
from ..predictive import test_registry
from ..predictive.test_registry import AS_OF, CHURN, FRAMES
from .conftest import CR_URL, fresh

S = RequestState
#: The registry tests' quick churn (fitted once for the module).
churn_fit, quick_churn = test_registry.churn_fit, test_registry.quick_churn


def hold(model, capture, as_of=AS_OF) -> ModelRun:
    with capture(execute=True):
        run = predictive.run_model(model, as_of=as_of, frames=FRAMES)
    assert run.status == ModelRunStatus.HELD, run.error
    return run


@pytest.fixture
def held(gw, quick_churn, django_capture_on_commit_callbacks):
    """``gw`` with a churn model whose floor is above its AUC, its run held (``w.run``)
    and the change request governance made of it (``w.cr``)."""
    w = gw
    w.model = PredictiveModel.objects.create(
        brand=w.own_brand,
        kind="churn",
        name="流失预警",
        parameters=CHURN,
        metric_floor=0.999,
        created_by=w.steward,
    )
    w.run = hold(w.model, django_capture_on_commit_callbacks)
    w.cr = ChangeRequest.objects.filter(items__model_run=w.run).distinct().get()
    return w


def written(model) -> bool:
    return TagComputation.objects.filter(
        tag__model_output__model=model, last_calculated_at__isnull=False
    ).exists()


def url(cr, action: str = "") -> str:
    return f"{CR_URL}{cr.pk}/{action + '/' if action else ''}"


def test_a_held_run_becomes_one_submitted_request_with_the_comparison(held):
    w, cr, run = held, held.cr, held.run
    assert ChangeRequest.objects.count() == 1
    assert cr.state == S.SUBMITTED and cr.submitted_at is not None
    assert (cr.business_line, cr.brand) == (w.own_line, w.own_brand)
    bot = cr.proposer
    assert bot.username == model_runs.SYSTEM_USERNAME and str(bot) == "算法模型"
    assert not bot.is_active and not bot.has_usable_password()
    assert "流失预警" in cr.title and f"#{run.pk}" in cr.title and "AUC below its floor" in cr.title
    assert "below the floor" in cr.description
    items = list(cr.items.order_by("position"))
    assert [i.tag.model_output.key for i in items] == ["churn_probability", "churn_level"]
    assert {i.kind for i in items} == {ChangeKind.MODEL_RUN} and {i.model_run_id for i in items} == {run.pk}
    assert items[0].changes["run"] == run.pk and items[0].changes["comparison"]["floor"] == 0.999
    rows = {row["field"]: row for row in items[0].diff}
    assert rows["run"]["new"].startswith(f"#{run.pk} ") and rows["run"]["old"] == "—"
    key = rows["metric:validation.auc"]
    assert key["new"] == f"{run.key_metric:.4f}" and key["old"] == "—" and "key metric" in key["label"]
    assert "metric:validation.brier" in rows
    # the model page's main numbers with their labels, not every count and timing of the run
    assert (
        key["label"] == "Validation ROC AUC (key metric)"
        and rows["metric:validation.brier"]["label"] == "Brier score"
    )
    assert not [name for name in rows if "candidates" in name or name.endswith("_s") or "buckets" in name]
    assert [row["field"] for row in items[1].diff] == ["run", "metric:validation.auc"]
    # the stewards are asked to review it, as for any submitted request
    asked = Notification.objects.filter(subject__startswith="Review requested", change_request=cr)
    assert {n.recipient.username for n in asked} == {"st", "st2"}
    actions = list(AuditEvent.objects.filter(change_request=cr).values_list("action", "actor__username"))
    assert actions == [(AuditAction.PROPOSED, bot.username), (AuditAction.SUBMITTED, bot.username)]
    assert cr in gov.review_queue(w.steward)


def test_approving_and_applying_publishes_the_run_without_a_tag_version(held):
    w, cr, run = held, held.cr, held.run
    tags = [item.tag for item in cr.items.all()]
    versions = TagVersion.objects.count()
    assert not written(w.model)
    response = client_for(w.steward).post(
        url(cr, "approve"), {"reason": "业务确认", "apply": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == S.APPLIED
    assert fresh(run).status == ModelRunStatus.PUBLISHED and written(w.model)
    assert predictive.last_published(w.model).pk == run.pk
    assert TagVersion.objects.count() == versions
    assert [fresh(tag).published_version for tag in tags] == [tag.published_version for tag in tags]
    assert not cr.items.exclude(produced_version=None).exists()
    applied = AuditEvent.objects.filter(change_request=cr, action=AuditAction.APPLIED)
    assert applied.count() == 2 and all(e.detail["run"] == run.pk for e in applied)


def test_rejecting_leaves_the_run_held_and_writes_nothing(held):
    w, cr, run = held, held.cr, held.run
    gov.reject(w.steward, cr, "AUC 太低，先排查特征")
    cr = fresh(cr)
    assert cr.state == S.REJECTED and cr.reviewer == w.steward and "AUC" in cr.decision_reason
    assert fresh(run).status == ModelRunStatus.HELD and not written(w.model)


def test_a_later_published_run_makes_the_request_out_of_date(held):
    w, cr, run = held, held.cr, held.run
    later = ModelRun.objects.create(
        model=w.model,
        status=ModelRunStatus.PUBLISHED,
        as_of=AS_OF,
        started_at=run.started_at + dt.timedelta(hours=1),
    )
    client = client_for(w.steward)
    detail = client.get(url(cr)).json()
    assert detail["stale"] is True and all(item["stale"] for item in detail["items"])
    for action, data in (("approve", {"apply": True}), ("approve", {})):
        response = client.post(url(cr, action), data, format="json")
        assert response.status_code == 409, response.json()
        assert f"#{later.pk}" in str(response.json())
    assert fresh(cr).state == S.SUBMITTED and fresh(run).status == ModelRunStatus.HELD
    assert not written(w.model)
    # an approved request applied after the run was superseded is refused too
    ModelRun.objects.filter(pk=later.pk).update(status=ModelRunStatus.FAILED)
    gov.approve(w.steward, cr, "同意")
    ModelRun.objects.filter(pk=later.pk).update(status=ModelRunStatus.PUBLISHED)
    assert client.post(url(cr, "apply"), {}, format="json").status_code == 409
    assert fresh(cr).state == S.APPROVED and not written(w.model)
    page = Client()
    page.force_login(w.steward)
    text = page.get(f"/review/{cr.pk}/").text
    assert "superseded" in text and 'id="tp-approve"' not in text
    assert client.post(url(cr, "reject"), {"reason": "已有新模型"}, format="json").status_code == 200


def test_a_newer_held_run_replaces_the_open_request(held, django_capture_on_commit_callbacks, settings):
    w, old = held, held.cr
    settings.LANGUAGE_CODE = "zh-hans"  # the request's texts are in the site's language
    newer = hold(w.model, django_capture_on_commit_callbacks, as_of=AS_OF + dt.timedelta(days=1))
    new = ChangeRequest.objects.filter(items__model_run=newer).distinct().get()
    assert new.title == f"算法模型「流失预警」的运行 #{newer.pk} 待发布：AUC 低于下限"
    old = fresh(old)
    assert old.state == S.WITHDRAWN and new.state == S.SUBMITTED
    assert f"#{new.pk}" in old.comments.get().text
    assert list(gov.review_queue(w.steward)) == [new]
    # the signal sent again for the same run makes no second request
    assert model_runs.propose_held_run(newer, "again", {}) == new
    assert ChangeRequest.objects.count() == 2


def test_operators_cannot_review_and_nobody_proposes_or_sends_back_a_model_run(held):
    w, cr = held, held.cr
    operator = client_for(w.operator)
    assert operator.post(url(cr, "approve"), {"apply": True}, format="json").status_code == 403
    response = client_for(w.steward).post(url(cr, "request-changes"), {"reason": "再看看"}, format="json")
    assert response.status_code == 409 and "cannot be sent back" in str(response.json())
    tag = cr.items.first().tag
    payload = {"title": "发布", "items": [{"kind": "model_run", "tag": tag.pk}], "submit": True}
    response = operator.post(CR_URL, payload, format="json")
    assert response.status_code == 400 and "kind" in str(response.json())
    with pytest.raises(ValidationError, match="model registry only"):
        gov.propose(w.operator, [gov.ItemSpec(ChangeKind.MODEL_RUN, tag)])
    assert ChangeRequest.objects.count() == 1 and fresh(cr).state == S.SUBMITTED
    assert fresh(held.run).status == ModelRunStatus.HELD


def test_the_api_and_the_pages_show_the_request_and_link_the_run(held):
    w, cr, run = held, held.cr, held.run
    client = client_for(w.steward)
    listed = client.get(CR_URL, {"kind": "model_run"}).json()
    listed = listed["results"] if isinstance(listed, dict) else listed
    assert [row["id"] for row in listed] == [cr.pk]
    body = client.get(url(cr)).json()
    assert body["kind"] == "model_run" and body["proposer"] == model_runs.SYSTEM_USERNAME
    assert body["stale"] is False and body["items"][0]["model_run"] == run.pk
    assert body["items"][0]["diff"][1]["field"] == "metric:validation.auc"
    assert client.get(url(cr, "impact")).status_code == 200
    page = Client()
    page.force_login(w.steward)
    text = page.get(f"/review/{cr.pk}/").text
    assert f'href="/models/{w.model.pk}/?run={run.pk}"' in text
    assert "Last published run" in text and "This run (held)" in text
    assert 'id="tp-approve"' in text and 'id="tp-request-changes"' not in text
    assert page.get("/review/").status_code == 200
    admin_page = page.get(f"/admin/governance/changerequest/{cr.pk}/change/")
    assert admin_page.status_code == 200 and f"/admin/predictive/modelrun/{run.pk}/change/" in admin_page.text
    model_page = page.get(f"/models/{w.model.pk}/").text
    assert f'href="/review/{cr.pk}/"' in model_page and f"Change request #{cr.pk}" in model_page
