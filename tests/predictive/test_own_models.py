"""Bring your own model in the registry: a score file model filled by uploads (atomic,
bad rows reported, identity-keyed files gated as lookups, Parquet, upload limits) and a
scoring endpoint model run against a local fake service (signed batches, partial
failure held, private addresses refused, the secret encrypted and never shown)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client

from tagportal.core import secrets
from tagportal.engine import results
from tagportal.engine.models import TagRun
from tagportal.predictive import services
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.endpoints import EndpointRefused, check_url
from tagportal.predictive.kinds import EndpointConfig, endpoint_features
from tagportal.predictive.models import EndpointSecret, ModelOutput, ModelRun, PredictiveModel
from tagportal.profiles import services as profile_services
from tagportal.profiles.models import IdentityLookup
from tests.conftest import client_for

from .fake_scoring import FakeScoring, logistic, start_server
from .test_registry import AS_OF, FRAMES, make_model

PHONE_A, PHONE_B = "13812345678", "13987654321"
SECRET = "a-shared-secret-0123456789"
LEVELS = {"high": 0.7, "medium": 0.3}


def csv_upload(text: str, name: str = "scores.csv") -> io.BytesIO:
    handle = io.BytesIO(text.encode())
    handle.name = name
    return handle


@pytest.fixture
def people(world):
    """Two people of the own brand, holding phones A and B: ``{"a": oneid, "b": oneid}``."""
    links = pd.DataFrame(
        [("a", "phone", "", PHONE_A), ("b", "phone", "", PHONE_B)], columns=["record", "type", "app", "value"]
    )
    resolved = profile_services.resolve_identities(world.own_brand, links)
    return dict(zip(resolved.records["record"], resolved.records["oneid"].astype(int), strict=True))


def score_file_model(world, **parameters) -> PredictiveModel:
    return make_model(world, "score_file", {**LEVELS, **parameters}, name="复购预测")


def upload(user, model, handle, **data):
    return client_for(user).post(
        f"/api/predictive/models/{model.pk}/scores/", {"file": handle, **data}, format="multipart"
    )


def stored(world, model, oneids) -> dict:
    results.NUMBERS.clear()
    results.BITMAPS.clear()
    codes = {o.key: o.tag.code for o in ModelOutput.objects.filter(model=model).select_related("tag")}
    values = results.values_for(world.own_brand, oneids, list(codes.values()))
    return {o: {key: values[o].get(code, {}).get("value") for key, code in codes.items()} for o in oneids}


# ---------------------------------------------------------------------------------------------
# Score files


def test_a_good_csv_writes_the_score_and_its_level(world, people):
    model = score_file_model(world)
    text = f"oneid,score\n{people['a']},0.91\n{people['b']},0.45\n424242,0.1\n"
    response = upload(world.steward, model, csv_upload(text))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "published" and body["people_scored"] == 2 and body["errors"] == []
    assert body["report"]["matched"] == 2 and body["report"]["unmatched_rows"] == [4]
    assert stored(world, model, [people["a"], people["b"]]) == {
        people["a"]: {"score": 0.91, "level": "high"},
        people["b"]: {"score": 0.45, "level": "medium"},
    }
    names = set(ModelOutput.objects.filter(model=model).values_list("tag__name", flat=True))
    assert names == {"复购预测·评分", "复购预测·等级"}
    assert ModelRun.objects.get(pk=body["run"]).metrics["levels"] == {"high": 1, "medium": 1}


def test_bad_rows_answer_400_with_the_rows_and_write_nothing(world, people):
    model = score_file_model(world, score_min=0, score_max=1)
    text = f"oneid,score\n{people['a']},0.5\nabc,0.2\n{people['b']},1.7\n{people['a']},0.1\n"
    response = upload(world.steward, model, csv_upload(text))
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "failed" and "nothing was written" in body["error"]
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(3, "oneid"), (4, "score"), (5, "oneid")]
    assert "Outside the declared range" in body["errors"][1]["message"]
    assert body["report"]["bad_rows"] == 3
    assert not TagRun.objects.filter(tag__model_output__model=model).exists()
    assert ModelRun.objects.get(pk=body["run"]).metrics["errors"] == body["errors"]


def test_a_parquet_file_works(world, people):
    model = score_file_model(world)
    handle = io.BytesIO()
    pd.DataFrame({"oneid": [people["a"], people["b"]], "score": [0.1, 0.8]}).to_parquet(handle, index=False)
    handle.seek(0)
    handle.name = "scores.parquet"
    response = upload(world.steward, model, handle)
    assert response.status_code == 201, response.content
    assert response.json()["report"]["format"] == "parquet"
    assert stored(world, model, [people["a"]])[people["a"]] == {"score": 0.1, "level": "low"}


def test_an_oversized_upload_answers_400(world, people, settings):
    settings.TAGPORTAL_MAX_UPLOAD_BYTES = 64
    model = score_file_model(world)
    text = "oneid,score\n" + "".join(f"{people['a']},0.5\n" for _ in range(20))
    response = upload(world.steward, model, csv_upload(text))
    assert response.status_code == 400
    assert "larger than" in response.json()["error"]
    assert not TagRun.objects.filter(tag__model_output__model=model).exists()


def test_an_identity_keyed_file_needs_the_lookup_permission(world, people):
    model = score_file_model(world)
    text = f"phone,score\n{PHONE_A},0.9\n{PHONE_B},0.2\n13700000000,0.5\n"
    refused = upload(world.steward, model, csv_upload(text), id_column="phone")
    assert refused.status_code == 403
    assert not ModelRun.objects.filter(model=model).exists()
    assert IdentityLookup.objects.get(user=world.steward).refused
    world.steward.user_permissions.add(Permission.objects.get(codename="lookup_identity"))
    steward = type(world.steward).objects.get(pk=world.steward.pk)
    response = upload(steward, model, csv_upload(text), id_column="phone")
    assert response.status_code == 201, response.content
    assert stored(world, model, [people["a"], people["b"]]) == {
        people["a"]: {"score": 0.9, "level": "high"},
        people["b"]: {"score": 0.2, "level": "low"},
    }
    audit = IdentityLookup.objects.get(user=steward, refused=False)
    assert (audit.endpoint, audit.candidates, audit.found, audit.brand) == (
        "score_file",
        3,
        2,
        world.own_brand,
    )
    assert PHONE_A not in json.dumps(ModelRun.objects.get(pk=response.json()["run"]).metrics)


def test_uploads_are_refused_to_readers_and_other_kinds(world):
    model = score_file_model(world)
    rfm = make_model(world, "rfm")
    assert upload(world.analyst, model, csv_upload("oneid,score\n1,0.5\n")).status_code == 403
    assert upload(world.steward, rfm, csv_upload("oneid,score\n1,0.5\n")).status_code == 400
    run = client_for(world.steward).post(f"/api/predictive/models/{model.pk}/run/")
    assert run.status_code == 400 and not ModelRun.objects.exists()


def test_a_score_file_model_s_levels_are_checked(world):
    response = client_for(world.steward).post(
        "/api/predictive/models/",
        {"brand": world.own_brand.code, "kind": "score_file", "name": "x", "parameters": {"high": 0.2}},
        format="json",
    )
    assert response.status_code == 400 and "medium" in " ".join(response.json()["parameters"])


# ---------------------------------------------------------------------------------------------
# Scoring endpoints


@pytest.fixture
def fake():
    server = start_server()
    yield lambda **kwargs: FakeScoring(server, SECRET, feature="activity_30d", **kwargs)
    server.clear()
    server.stop()


def endpoint_model(world, url, **parameters) -> PredictiveModel:
    model = make_model(
        world,
        "endpoint",
        {"url": url, "features": ["activity_30d", "orders_90d"], "batch_size": 200, "retries": 1, **LEVELS}
        | parameters,
        name="外部流失模型",
    )
    services.set_endpoint_secret(model, SECRET)
    return model


def test_an_endpoint_run_posts_signed_batches_and_writes_the_scores(world, fake):
    service = fake()
    model = endpoint_model(world, service.url)
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED, run.error
    report = run.metrics["scoring"]
    assert report["complete"] and report["batches"] > 1 and report["failed_batches"] == []
    assert service.statuses() == [200] * report["batches"]  # the fake refuses a bad signature with 401
    assert "secret" not in json.dumps(run.parameters) and SECRET not in json.dumps(run.metrics)
    activity = endpoint_features(FRAMES, EndpointConfig(url="http://x", features=("activity_30d",)), AS_OF)
    assert run.people_scored == len(activity) > 200
    busiest, idle = int(activity["activity_30d"].idxmax()), int(activity["activity_30d"].idxmin())
    got = stored(world, model, [busiest, idle])
    assert got[busiest]["score"] == pytest.approx(logistic(activity.loc[busiest, "activity_30d"]))
    assert got[busiest]["level"] == "high"
    expected = logistic(activity.loc[idle, "activity_30d"])
    assert got[idle]["level"] == ("high" if expected >= 0.7 else "medium" if expected >= 0.3 else "low")


def test_a_failing_batch_holds_the_run_and_writes_nothing(world, fake):
    service = fake(fail_batches={1})
    model = endpoint_model(world, service.url)
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.HELD
    failed = run.metrics["scoring"]["failed_batches"]
    assert [(f["batch"], f["error"], f["status"]) for f in failed] == [(1, "server_error", 500)]
    assert "failed batches" in run.error
    assert not TagRun.objects.filter(tag__model_output__model=model).exists()
    # Approving it cannot publish scores the endpoint still fails to give.
    with pytest.raises(services.HeldRunRefused, match="failed batches"):
        services.publish_held_run(run, frames=FRAMES)
    run.refresh_from_db()
    assert run.status == ModelRunStatus.HELD
    assert not TagRun.objects.filter(tag__model_output__model=model).exists()


def test_a_wrong_secret_is_refused_by_the_service(world, fake):
    service = fake()
    model = endpoint_model(world, service.url)
    services.set_endpoint_secret(model, "another-secret-0123456789")
    answer = client_for(world.steward).post(f"/api/predictive/models/{model.pk}/test-endpoint/").json()
    assert (answer["ok"], answer["status"], answer["error"]) == (False, 401, "unauthorized")


def test_the_connection_test_posts_one_signed_batch(world, fake):
    service = fake()
    model = endpoint_model(world, service.url)
    response = client_for(world.steward).post(f"/api/predictive/models/{model.pk}/test-endpoint/")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["ok"] and answer["status"] == 200 and answer["error"] is None
    assert answer["request"]["rows"] == [{"oneid": 1, "features": {"activity_30d": None, "orders_90d": None}}]
    assert answer["response"] == {"scores": [{"oneid": 1, "score": 0.5}]}
    assert service.statuses() == [200]
    assert (
        client_for(world.analyst).post(f"/api/predictive/models/{model.pk}/test-endpoint/").status_code == 403
    )


def test_the_secret_is_encrypted_and_never_shown(world, fake):
    service = fake()
    client = client_for(world.steward)
    data = {
        "brand": world.own_brand.code,
        "kind": "endpoint",
        "name": "外部模型",
        "parameters": {"url": service.url, "features": ["recency_days"]},
        "secret": SECRET,
    }
    created = client.post("/api/predictive/models/", data, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["secret_set"] is True and SECRET not in created.content.decode()
    model = PredictiveModel.objects.get(pk=created.json()["id"])
    read = client.get(f"/api/predictive/models/{model.pk}/")
    assert read.json()["secret_set"] is True and "secret" not in read.json()
    assert EndpointSecret.objects.get(model=model).secret == SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM predictive_endpointsecret WHERE model_id = %s", [model.pk])
        stored_secret = cursor.fetchone()[0]
    assert SECRET not in stored_secret and secrets.decrypt(stored_secret) == SECRET
    admin = Client()
    admin.force_login(world.admin)
    page = admin.get(f"/admin/predictive/predictivemodel/{model.pk}/change/")
    assert page.status_code == 200 and SECRET not in page.content.decode()
    assert 'name="secret"' in page.content.decode()
    assert SECRET not in json.dumps(list(model.history.values("parameters")), default=str)
    short = client.patch(f"/api/predictive/models/{model.pk}/", {"secret": "short"}, format="json")
    assert short.status_code == 400 and "secret" in short.json()
    rfm = client.post(
        "/api/predictive/models/",
        {"brand": world.own_brand.code, "kind": "rfm", "name": "r", "parameters": {}, "secret": SECRET},
        format="json",
    )
    assert rfm.status_code == 400 and "secret" in rfm.json()


def test_a_secret_under_a_retired_key_must_be_set_again(world, fake, settings):
    service = fake()
    model = PredictiveModel.objects.create(
        brand=world.own_brand,
        kind="endpoint",
        name="换钥模型",
        parameters={"url": service.url, "features": ["recency_days"]},
    )
    services.set_endpoint_secret(model, SECRET)
    settings.TAGPORTAL_SECRET_KEYS = secrets.generate_key()  # the old key is gone
    with pytest.raises(services.ByomRefused, match="set it again"):
        services.test_endpoint(model)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/score",
        "http://localhost/score",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/score",
        "http://[::1]/score",
        "http://[::ffff:192.168.1.1]/score",
    ],
)
def test_private_addresses_are_refused_when_the_setting_is_off(world, settings, url):
    settings.TAGPORTAL_SCORING_ALLOW_PRIVATE = False
    with pytest.raises(EndpointRefused, match="not public"):
        check_url(url)
    response = client_for(world.steward).post(
        "/api/predictive/models/",
        {
            "brand": world.own_brand.code,
            "kind": "endpoint",
            "name": "内网",
            "parameters": {"url": url, "features": ["recency_days"]},
        },
        format="json",
    )
    assert response.status_code == 400 and "not public" in " ".join(response.json()["parameters"])


def test_a_run_checks_the_address_again(world, fake, settings):
    service = fake()
    model = endpoint_model(world, service.url)
    settings.TAGPORTAL_SCORING_ALLOW_PRIVATE = False
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.FAILED and "not public" in run.error
    assert service.calls == []


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"url": "ftp://example.com/x", "features": ["recency_days"]}, "http://"),
        ({"url": "https://u:p@example.com/x", "features": ["recency_days"]}, "password"),
        ({"url": "https://example.com/x", "features": ["phone"]}, "does not compute"),
        ({"url": "https://example.com/x", "features": []}, "features"),
        ({"url": "https://example.com/x", "features": ["recency_days"], "batch_size": 5000}, "batch_size"),
        ({"url": "https://example.com/x", "features": ["recency_days"], "timeout": 0}, "timeout"),
        ({"url": "https://example.com/x", "features": ["recency_days"], "secret": "x" * 20}, "Unknown"),
    ],
)
def test_endpoint_parameters_are_checked(world, parameters, message):
    response = client_for(world.steward).post(
        "/api/predictive/models/",
        {"brand": world.own_brand.code, "kind": "endpoint", "name": "e", "parameters": parameters},
        format="json",
    )
    assert response.status_code == 400 and message in " ".join(response.json()["parameters"])
    assert not PredictiveModel.objects.exists()


def test_the_admin_sets_a_secret_without_showing_it(world, fake):
    service = fake()
    model = endpoint_model(world, service.url)
    EndpointSecret.objects.filter(model=model).delete()
    admin = Client()
    admin.force_login(world.admin)
    data = {
        "brand": model.brand_id,
        "kind": "endpoint",
        "name": model.name,
        "parameters": json.dumps(model.parameters),
        "schedule": "",
        "is_active": "on",
        "secret": "set-in-the-admin-0123456789",
        "outputs-TOTAL_FORMS": "0",
        "outputs-INITIAL_FORMS": "0",
    }
    response = admin.post(f"/admin/predictive/predictivemodel/{model.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert EndpointSecret.objects.get(model=model).secret == "set-in-the-admin-0123456789"
    page = admin.get(f"/admin/predictive/predictivemodel/{model.pk}/change/").content.decode()
    assert "set-in-the-admin-0123456789" not in page


def test_the_model_page_uploads_a_score_file_for_stewards(world, people):
    model = score_file_model(world)
    steward = Client()
    steward.force_login(world.steward)
    page = steward.get(f"/models/{model.pk}/").content.decode()
    assert 'id="tp-upload-scores"' in page and 'id="tp-run-now"' not in page
    bad = steward.post(
        f"/models/{model.pk}/scores/", {"file": csv_upload("oneid,score\nabc,0.5\n")}, follow=True
    )
    assert "Row 2, oneid" in bad.content.decode()
    good = csv_upload(f"oneid,score\n{people['a']},0.8\n")
    done = steward.post(f"/models/{model.pk}/scores/", {"file": good}, follow=True)
    assert "1 people scored" in done.content.decode()
    assert stored(world, model, [people["a"]])[people["a"]] == {"score": 0.8, "level": "high"}
    analyst = Client()
    analyst.force_login(world.analyst)
    assert (
        analyst.post(f"/models/{model.pk}/scores/", {"file": csv_upload("oneid,score\n")}).status_code == 403
    )
