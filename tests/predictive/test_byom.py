"""Bring your own model: score files (OneID or identity, atomic, bad rows reported, caps),
buckets, and the HTTP scoring contract against a local fake service."""

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import requests
from django.test import override_settings

from tagportal.predictive.byom import (
    ScoreFileError,
    ScoreLevel,
    read_score_file,
    score_buckets,
    score_over_http,
)
from tagportal.predictive.scoring_contract import (
    ScoringRequestSerializer,
    ScoringResponseSerializer,
    signature,
    signed_headers,
    verify,
)
from tagportal.profiles import services
from tagportal.profiles.models import Customer

from .fake_scoring import FakeScoring, logistic, start_server

PHONE_A = "13812345678"
PHONE_B = "13987654321"
PHONE_C = "15800001111"
SECRET = "s3cret-shared"


def csv_file(text: str, name: str = "scores.csv") -> io.BytesIO:
    handle = io.BytesIO(text.encode())
    handle.name = name
    return handle


def parquet_file(frame: pd.DataFrame, name: str = "scores.parquet") -> io.BytesIO:
    handle = io.BytesIO()
    frame.to_parquet(handle, index=False)
    handle.seek(0)
    handle.name = name
    return handle


def links(*records) -> pd.DataFrame:
    return pd.DataFrame([(r, t, "", v) for r, t, v in records], columns=["record", "type", "app", "value"])


@pytest.fixture
def people(world):
    """Three people of the own brand: A (phone A), B (phone B and device d-b), C (phone C),
    and one of the other brand holding phone C too. ``{name: oneid}``."""
    resolved = services.resolve_identities(
        world.own_brand,
        links(
            ("a", "phone", PHONE_A),
            ("b", "phone", PHONE_B),
            ("b", "device_id", "d-b"),
            ("c", "phone", PHONE_C),
        ),
    )
    services.resolve_identities(world.other_brand, links(("z", "phone", PHONE_C)))
    oneids = dict(zip(resolved.records["record"], resolved.records["oneid"].astype(int), strict=True))
    return oneids


# ---------------------------------------------------------------------------
# Score files


def test_oneid_csv_happy_path(world, people):
    text = f"oneid,score\n{people['a']},0.9\n{people['b']},0.25\n424242,0.5\n"
    result = read_score_file(world.own_brand, csv_file(text))
    assert result.ok and result.errors == []
    assert result.scores.to_dict() == {people["a"]: 0.9, people["b"]: 0.25}
    assert result.scores.dtype == "float64" and result.scores.index.name == "oneid"
    report = result.report
    assert (report["format"], report["rows"], report["matched"]) == ("csv", 3, 2)
    assert report["unmatched"] == 1 and report["unmatched_rows"] == [4]
    assert report["summary"] == {"min": 0.25, "mean": 0.575, "max": 0.9}
    json.dumps(report)


def test_phone_parquet_happy_path_with_other_formats_of_the_number(world, people):
    frame = pd.DataFrame({"phone": [f"+86 {PHONE_A}", "138-0000-0000", PHONE_C], "score": [0.1, 0.2, 0.7]})
    result = read_score_file(world.own_brand, parquet_file(frame), id_column="phone")
    assert result.ok
    # phone C of the own brand, not the other brand's person with the same number
    assert result.scores.to_dict() == {people["a"]: 0.1, people["c"]: 0.7}
    assert result.report["format"] == "parquet"
    assert result.report["identity_values"] == 3 and result.report["unmatched_rows"] == [3]


def test_a_merged_oneid_counts_for_the_person_it_was_merged_into(world, people):
    # b was found to be a, and later a to be c: both follow to c
    gone, kept = people["b"], people["c"]
    live = Customer.objects.filter(brand=world.own_brand)
    live.filter(oneid=people["a"]).update(merged_into=live.get(oneid=kept))
    live.filter(oneid=gone).update(merged_into=live.get(oneid=people["a"]))
    result = read_score_file(world.own_brand, csv_file(f"oneid,score\n{gone},0.4\n"))
    assert result.ok and result.scores.to_dict() == {kept: 0.4}
    assert result.report["merged_followed"] == 1
    # both of them in one file: one person given twice
    twice = read_score_file(world.own_brand, csv_file(f"oneid,score\n{kept},0.4\n{gone},0.5\n"))
    assert not twice.ok and [e["row"] for e in twice.errors] == [3]
    assert "row 2" in twice.errors[0]["message"]
    # by an identity of the merged person too
    by_device = read_score_file(
        world.own_brand, csv_file("device_id,score\nd-b,0.4\n"), id_column="device_id"
    )
    assert by_device.scores.to_dict() == {kept: 0.4}


def test_every_bad_row_is_reported_and_nothing_is_returned(world, people):
    a, b, c = people["a"], people["b"], people["c"]
    text = (
        "oneid,score\n"
        f"{a},0.5\n"  # 2 fine
        f"{b},abc\n"  # 3 not a number
        f"{c},\n"  # 4 empty
        "77,nan\n"  # 5 NaN
        "78,inf\n"  # 6 infinite
        "79,1.5\n"  # 7 out of the range
        f"{a},0.3\n"  # 8 repeats row 2
        "x1,0.2\n"  # 9 not a OneID
        "0,0.2\n"  # 10 not positive
        ",0.2\n"  # 11 no OneID
    )
    result = read_score_file(world.own_brand, csv_file(text), score_range=(0, 1))
    assert not result.ok
    assert result.scores.empty
    got = {(e["row"], e["column"]) for e in result.errors}
    assert got == {
        (3, "score"),
        (4, "score"),
        (5, "score"),
        (6, "score"),
        (7, "score"),
        (8, "oneid"),
        (9, "oneid"),
        (10, "oneid"),
        (11, "oneid"),
    }
    messages = {e["row"]: e["message"] for e in result.errors}
    assert messages[3] == "Not a number." and messages[4] == "Required."
    assert "finite" in messages[5] and "finite" in messages[6]
    assert "range 0 to 1" in messages[7] and "row 2" in messages[8]
    assert result.report["bad_rows"] == 9
    assert "summary" not in result.report


def test_bad_identities_and_two_values_of_one_person(world, people):
    text = "device_id,score\nd-b,0.5\nd-b,0.6\n\n"
    result = read_score_file(world.own_brand, csv_file(text), id_column="device_id")
    assert [(e["row"], e["column"]) for e in result.errors] == [(3, "device_id")]
    phones = f"phone,score\n{PHONE_B},0.1\n12345,0.2\n,0.3\n"
    result = read_score_file(world.own_brand, csv_file(phones), id_column="phone")
    assert [(e["row"], e["column"]) for e in result.errors] == [(3, "phone"), (4, "phone")]
    assert "mobile" in result.errors[0]["message"] and result.scores.empty


def test_parquet_scores_that_are_not_finite_and_float_oneids(world, people):
    frame = pd.DataFrame({"oneid": [float(people["a"]), 2.5, np.nan], "score": [np.inf, 0.1, 0.2]})
    result = read_score_file(world.own_brand, parquet_file(frame))
    assert [(e["row"], e["column"]) for e in result.errors] == [(2, "score"), (3, "oneid"), (4, "oneid")]


def test_header_problems_are_errors_of_row_one(world, people):
    result = read_score_file(world.own_brand, csv_file("oneid,value,extra\n1,0.2,x\n"))
    assert {(e["row"], e["column"]) for e in result.errors} == {(1, "value"), (1, "extra"), (1, "score")}
    result = read_score_file(world.own_brand, csv_file("phone,score\n"), id_column="phone")
    assert result.errors == [{"row": 1, "column": "", "message": "The file has no rows."}]


def test_files_refused_whole(world, people):
    with pytest.raises(ScoreFileError) as refused:
        read_score_file(world.own_brand, csv_file("oneid,score\n1,0.1\n"), id_column="email")
    assert refused.value.code == "id_column"
    with pytest.raises(ScoreFileError):
        read_score_file(world.own_brand, csv_file("wechat_openid,score\no1,0.1\n"), id_column="wechat_openid")
    with pytest.raises(ScoreFileError):
        read_score_file(world.own_brand, csv_file("oneid,score\n1,0.1\n"), score_range=(1, 0))
    excel = csv_file("", name="scores.xlsx")
    with pytest.raises(ScoreFileError) as refused:
        read_score_file(world.own_brand, excel)
    assert "Excel" in refused.value.message


@override_settings(TAGPORTAL_IMPORT_MAX_ROWS=3, TAGPORTAL_IMPORT_MAX_COLUMNS=4)
def test_the_import_caps_apply(world, people):
    rows = "".join(f"{i},0.5\n" for i in range(1, 6))
    with pytest.raises(ScoreFileError) as refused:
        read_score_file(world.own_brand, csv_file("oneid,score\n" + rows))
    assert "more than 3 rows" in refused.value.message
    frame = pd.DataFrame({"oneid": range(1, 6), "score": 0.5})
    with pytest.raises(ScoreFileError):
        read_score_file(world.own_brand, parquet_file(frame))
    wide = ",".join(f"c{i}" for i in range(8))
    with pytest.raises(ScoreFileError) as refused:
        read_score_file(world.own_brand, csv_file(f"oneid,score,{wide}\n1,0.5\n"))
    assert "columns" in refused.value.message


@override_settings(TAGPORTAL_MAX_UPLOAD_BYTES=10)
def test_the_upload_size_limit_applies(world, people):
    with pytest.raises(ScoreFileError) as refused:
        read_score_file(world.own_brand, _sized(100))
    assert refused.value.code == "too_large"


def _sized(size: int):
    handle = csv_file("oneid,score\n1,0.5\n")
    handle.size = size
    return handle


def test_buckets():
    scores = pd.Series([0.95, 0.7, 0.69, 0.1, np.nan], index=[5, 6, 7, 8, 9])
    levels = score_buckets(scores, high_from=0.8, medium_from=0.7)
    assert levels.tolist() == ["high", "medium", "low", "low", None]
    assert list(levels.index) == [5, 6, 7, 8, 9]
    assert set(ScoreLevel.values) == {"high", "medium", "low"}
    with pytest.raises(ValueError):
        score_buckets(scores, high_from=0.5, medium_from=0.7)


def test_level_labels_are_translated():
    from django.utils import translation

    with translation.override("zh-hans"):
        assert [str(label) for label in ScoreLevel.labels] == ["高", "中", "低"]


# ---------------------------------------------------------------------------
# HTTP scoring


@pytest.fixture
def server():
    server = start_server()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def features(n: int = 10) -> pd.DataFrame:
    oneids = np.arange(101, 101 + n, dtype="int64")
    frame = pd.DataFrame(
        {"x": np.linspace(-2, 2, n), "city": ["上海"] * n, "n": np.arange(n)},
        index=pd.Index(oneids, name="oneid"),
    )
    frame.loc[oneids[0], "x"] = np.nan  # sent as null
    return frame


def run(fake, frame=None, secret=SECRET, **options):
    options = {
        "batch_size": 4,
        "timeout": 1.0,
        "retries": 2,
        "backoff": 0.01,
        "max_retry_after": 0.35,
    } | options
    return score_over_http(
        fake.url, secret, features() if frame is None else frame, model_key="own", **options
    )


def test_signed_batches_are_scored(server):
    fake = FakeScoring(server, SECRET)
    frame = features()
    result = run(fake, frame)
    assert result.report["complete"] and result.report["failed_batches"] == []
    assert fake.statuses() == [200, 200, 200] and [c["batch"] for c in fake.calls] == [0, 1, 2]
    expected = {o: logistic(0.0 if math.isnan(x) else x) for o, x in frame["x"].items()}
    assert result.scores.to_dict() == pytest.approx(expected)
    assert result.scores.index.name == "oneid" and result.scores.dtype == "float64"
    assert (result.report["batches"], result.report["scored"], result.report["unscored"]) == (3, 10, 0)
    json.dumps(result.report)


def test_a_forged_or_expired_signature_is_refused_once_and_stops_the_run(server):
    fake = FakeScoring(server, SECRET)
    result = run(fake, secret="not-the-secret")
    assert fake.statuses() == [401]  # no retry, and no more batches sent
    assert result.scores.empty and result.report["stopped"] == "unauthorized"
    assert [(b["batch"], b["error"]) for b in result.report["failed_batches"]] == [
        (0, "unauthorized"),
        (1, "not_sent"),
        (2, "not_sent"),
    ]
    old = FakeScoring(start_server(), SECRET)
    try:
        expired = run(old, clock=lambda: 1_000_000.0)
        assert old.statuses() == [401] and expired.report["stopped"] == "unauthorized"
    finally:
        old.server.stop()


def test_retries_recover_from_503_and_429(server):
    fake = FakeScoring(server, SECRET, fail_first=2)
    result = run(fake)
    assert result.report["complete"]
    assert fake.statuses() == [503, 503, 200, 200, 200]

    fake.calls.clear()
    limited = FakeScoring(start_server(), SECRET, rate_limit=1, rate_window=0.3, retry_after="3600")
    try:
        result = run(limited)
        # Retry-After honoured (capped at 0.35 s): each refused batch passes after one wait
        assert result.report["complete"], result.report
        assert 429 in limited.statuses() and limited.statuses().count(200) == 3
        assert result.report["seconds"] < 5
    finally:
        limited.server.stop()


def test_a_batch_that_keeps_failing_is_reported_and_the_others_kept(server):
    fake = FakeScoring(server, SECRET, fail_batches={1})
    result = run(fake)
    assert fake.statuses(batch=1) == [500, 500, 500]  # the first try and two retries
    assert [(b["batch"], b["people"]) for b in result.report["failed_batches"]] == [(1, 4)]
    assert result.report["failed_batches"][0]["error"] in {"server_error", "retries_exhausted"}
    assert (result.report["scored"], result.report["unscored"], result.report["complete"]) == (6, 4, False)
    assert set(result.scores.index) == {101, 102, 103, 104, 109, 110}


def test_a_slow_batch_times_out_and_the_others_are_kept(server):
    fake = FakeScoring(server, SECRET, slow_batches={2}, delay=0.6)
    result = run(fake, timeout=0.2, retries=1)
    failed = result.report["failed_batches"]
    assert [(b["batch"], b["error"]) for b in failed] == [(2, "timeout")]
    assert result.report["scored"] == 8


def test_malformed_answers_are_reported_and_ignored(server):
    fake = FakeScoring(server, SECRET, mangle={0: "unknown_oneid", 1: "not_number", 2: "duplicate"})
    result = run(fake)
    assert result.report["ignored"] == {"unknown_oneids": 1, "duplicates": 1, "not_numbers": 2}
    assert result.report["scored"] == 8 and result.report["failed_batches"] == []
    assert 105 not in result.scores.index and 106 not in result.scores.index
    assert result.scores[109] == pytest.approx(logistic(features()["x"][109]))  # the first answer kept

    for mode in ("not_json", "no_scores", "missing"):
        other = FakeScoring(start_server(), SECRET, mangle={0: mode})
        try:
            got = run(other)
        finally:
            other.server.stop()
        if mode == "missing":
            assert got.report["unscored"] == 1 and got.report["failed_batches"] == []
        else:
            assert [(b["batch"], b["error"]) for b in got.report["failed_batches"]] == [(0, "malformed")]


def test_a_refused_body_is_not_retried(server):
    fake = FakeScoring(server, SECRET)
    session = requests.Session()
    body = b'{"model": "own"}'
    response = session.post(fake.url, data=body, headers=signed_headers(SECRET, body))
    assert response.status_code == 400 and fake.statuses() == [400]


def test_bad_inputs_are_refused_before_sending(server):
    fake = FakeScoring(server, SECRET)
    frame = features()
    with pytest.raises(ValueError):
        run(fake, frame.set_axis([1] * len(frame)))
    with pytest.raises(ValueError):
        run(fake, batch_size=0)
    with pytest.raises(ValueError):
        score_over_http("ftp://example.com/x", SECRET, frame, model_key="own")
    assert fake.calls == []


def test_the_contract_serializers_and_signature():
    body = json.dumps({"model": "own", "batch": 0, "rows": [{"oneid": 1, "features": {"x": None}}]}).encode()
    assert ScoringRequestSerializer(data=json.loads(body)).is_valid()
    assert not ScoringRequestSerializer(data={"model": "own", "batch": -1, "rows": []}).is_valid()
    assert ScoringResponseSerializer(data={"scores": [{"oneid": 1, "score": 0.4}]}).is_valid()
    headers = signed_headers(SECRET, body, now=1_700_000_000)
    assert headers["X-TagPortal-Signature"] == signature(SECRET, "1700000000", body)
    stamp, sig = headers["X-TagPortal-Timestamp"], headers["X-TagPortal-Signature"]
    assert verify(SECRET, stamp, sig, body, now=1_700_000_100)
    assert not verify(SECRET, stamp, sig, body + b" ", now=1_700_000_100)
    assert not verify(SECRET, stamp, sig, body, now=1_700_000_400)
    assert not verify("other", stamp, sig, body, now=1_700_000_000)


def test_a_rate_limit_that_never_lifts_fails_the_batches_as_rate_limited(server):
    fake = FakeScoring(server, SECRET, rate_limit=0, retry_after="3600")
    result = run(fake, features(3), max_retry_after=0.01, retries=1)
    assert fake.statuses() == [429, 429]
    assert [(b["batch"], b["error"], b["status"]) for b in result.report["failed_batches"]] == [
        (0, "rate_limited", 429)
    ]
    assert result.scores.empty and result.report["unscored"] == 3
