"""Imports of customers, identities, events and orders from CSV and Parquet: good
files, bad rows (reported by row number, nothing written), re-sending a file, unknown
identities, the command line, and progress."""

import datetime as dt
import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from tagportal.profiles import importers, imports, services
from tagportal.profiles.models import Customer, Event, Identity, ImportJob, MergeRecord, Order

from .conftest import EVENTS_CSV, PHONE, csv_upload, parquet_upload

pytestmark = pytest.mark.django_db


def counts():
    return (
        Customer.objects.count(),
        Identity.objects.count(),
        Event.objects.count(),
        Order.objects.count(),
        MergeRecord.objects.count(),
    )


def run(brand, kind, text, name="data.csv", **kwargs):
    return imports.import_file(brand, kind, csv_upload(text, name), **kwargs)


def test_events_csv_creates_people_for_unknown_identities(brand, world):
    job = run(brand, "events", EVENTS_CSV, user=world.steward)
    assert job.status == "succeeded", job.errors or job.message
    assert (job.rows_total, job.rows_ok, job.rows_skipped, job.rows_bad) == (4, 4, 0, 0)
    assert job.created_counts == {"customers": 2, "identities": 3, "merges": 0, "events": 4}
    assert job.created_by == world.steward and job.progress == 100 and job.file_name == "data.csv"
    assert job.started_at and job.finished_at
    e1, e2, e3, e4 = Event.objects.order_by("client_id")
    assert e1.customer == e2.customer == e3.customer != e4.customer
    assert e1.identity.type == "phone" and e3.identity.type == "wechat_unionid"
    # a time without an offset is Beijing time; an explicit one is kept
    assert e1.time == dt.datetime(2024, 5, 1, 2, 30, tzinfo=dt.UTC)
    assert e3.time == dt.datetime(2024, 5, 2, 2, 0, tzinfo=dt.UTC)
    assert e2.properties == {"project": "热玛吉"} and e1.properties == {}
    assert (e1.type, e1.channel, e1.store) == ("store_visit", "store", "上海静安店")


def test_resending_a_file_adds_nothing(brand):
    run(brand, "events", EVENTS_CSV)
    before = counts()
    again = run(brand, "events", EVENTS_CSV)
    assert again.status == "succeeded"
    assert (again.rows_ok, again.rows_skipped) == (0, 4)
    assert again.created_counts["events"] == 0 and again.created_counts["customers"] == 0
    assert counts() == before
    # a file with one new row adds just that row
    more = run(brand, "events", EVENTS_CSV + "e5,2024-05-04 09:00:00,coupon_used,miniprogram,,,oU2,\n")
    assert (more.rows_ok, more.rows_skipped) == (1, 4)
    assert Event.objects.count() == 5


def test_bad_rows_are_reported_by_row_number_and_nothing_is_written(brand):
    text = (
        "client_id,time,type,channel,value,phone,wechat_openid,properties\n"
        f"e1,2024-05-01 10:00:00,store_visit,store,,{PHONE},,\n"  # row 2: fine
        "e2,yesterday,store_visit,store,,13800000000,,\n"  # row 3: time
        "e3,2024-05-01 10:00:00,teleport,store,,13800000001,,\n"  # row 4: type
        "e4,2024-05-01 10:00:00,page_view,fax,abc,13800000002,,\n"  # row 5: channel and value
        "e5,2024-05-01 10:00:00,page_view,web,,12345,,\n"  # row 6: phone
        "e6,2024-05-01 10:00:00,page_view,web,,,oM1,\n"  # row 7: openid without its app
        "e7,2024-05-01 10:00:00,page_view,web,,,,\n"  # row 8: no identity
        "e1,2024-05-01 10:00:00,page_view,web,,13800000003,,\n"  # row 9: repeated client id
        ',2024-05-01 10:00:00,page_view,web,,13800000004,,"[1, 2]"\n'  # row 10: no client id, bad properties
        "e9,2999-01-01 10:00:00,page_view,web,,13800000005,,\n"  # row 11: in the future
    )
    job = run(brand, "events", text)
    assert job.status == "failed"
    assert counts() == (0, 0, 0, 0, 0)
    assert (job.rows_total, job.rows_ok, job.rows_bad) == (10, 0, 9)
    found = {(e["row"], e["column"]) for e in job.errors}
    assert found == {
        (3, "time"), (4, "type"), (5, "channel"), (5, "value"), (6, "phone"), (7, "wechat_app"), (8, ""),
        (9, "client_id"), (10, "client_id"), (10, "properties"), (11, "time"),
    }  # fmt: skip
    messages = {(e["row"], e["column"]): e["message"] for e in job.errors}
    assert "Beijing time" in messages[(3, "time")]
    assert "teleport" in messages[(4, "type")]
    assert "row 2" in messages[(9, "client_id")]
    assert "mobile number" in messages[(6, "phone")]
    assert "12345" not in messages[(6, "phone")]  # identity values are not echoed
    assert [e["row"] for e in job.errors] == sorted(e["row"] for e in job.errors)


def test_header_problems_are_reported_on_row_1(brand):
    job = run(brand, "orders", "client_id,when,amount,chanel\nx,2024-05-01,10,store\n")
    assert job.status == "failed"
    assert {(e["row"], e["column"]) for e in job.errors} == {
        (1, "when"), (1, "chanel"), (1, "time"), (1, ""),
    }  # fmt: skip
    assert Order.objects.count() == 0


def test_an_unreadable_file_fails_cleanly(brand):
    job = run(brand, "events", 'client_id,time\n"unterminated,2024\n')
    assert job.status == "failed" and job.message
    assert counts() == (0, 0, 0, 0, 0)


def test_a_failure_while_writing_rolls_everything_back(brand, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "write_events", broken)
    job = run(brand, "events", EVENTS_CSV)
    assert job.status == "failed" and "disk full" in job.message
    assert counts() == (0, 0, 0, 0, 0)


def test_orders_csv_and_gb18030(brand):
    text = (
        "client_id,time,amount,quantity,channel,store,category,sku,discount,crm_member_id,properties.campaign,items\n"
        'o1,2024-11-11 20:00:00,"1,280.50",2,tmall,,护肤,SKU1,100,M001,双11,"[{""sku"": ""SKU1""}]"\n'
        "o2,2024/11/12 9:05,99,,store,上海静安店,彩妆,,,M002,,\n"
    )
    job = imports.import_file(brand, "orders", csv_upload(text, "订单.csv", encoding="gb18030"))
    assert job.status == "succeeded", job.errors
    o1, o2 = Order.objects.order_by("client_id")
    assert (str(o1.amount), o1.quantity, str(o1.discount), o1.category) == ("1280.50", 2, "100.00", "护肤")
    assert o1.properties == {"campaign": "双11"} and o1.items == [{"sku": "SKU1"}]
    assert (o2.quantity, str(o2.discount)) == (1, "0.00")
    assert o2.time == dt.datetime(2024, 11, 12, 1, 5, tzinfo=dt.UTC)
    assert job.file_name == "订单.csv"


def test_negative_amounts_and_fractional_quantities_are_refused(brand):
    job = run(brand, "orders", "client_id,time,amount,quantity,jd_pin\no1,2024-05-01,-5,1.5,jd1\n")
    assert {(e["row"], e["column"]) for e in job.errors} == {(2, "amount"), (2, "quantity")}


def test_parquet_import(brand):
    frame = pd.DataFrame(
        {
            "client_id": ["p1", "p2"],
            "time": pd.to_datetime(["2024-05-01 10:00", "2024-05-02 10:00"]).tz_localize("Asia/Shanghai"),
            "type": ["treatment", "follow_up"],
            "channel": ["store", "wecom"],
            "value": [None, 5.0],
            "wecom_external_id": ["wm1", "wm1"],
            "properties.project": ["热玛吉", None],
            "properties.paid": [True, None],
        }
    )
    job = imports.import_file(brand, "events", parquet_upload(frame))
    assert job.status == "succeeded", job.errors
    treatment, follow_up = Event.objects.order_by("client_id")
    assert treatment.customer == follow_up.customer
    assert treatment.properties == {"project": "热玛吉", "paid": True}
    assert follow_up.value == 5.0 and treatment.value is None
    assert treatment.time == dt.datetime(2024, 5, 1, 2, 0, tzinfo=dt.UTC)
    # bad rows in Parquet are numbered like a spreadsheet too (first record = row 2)
    frame.loc[1, "type"] = "nope"
    frame["client_id"] = ["p3", "p4"]
    bad = imports.import_file(brand, "events", parquet_upload(frame))
    assert [(e["row"], e["column"]) for e in bad.errors] == [(3, "type")]


def test_customers_import_sets_attributes_and_is_idempotent(brand):
    text = (
        "phone,crm_member_id,gender,age,city,member_level,wecom_added\n"
        f"{PHONE},M1,女,29,上海,金卡,是\n"
        "13900000000,M2,male,41,北京,银卡,no\n"
    )
    job = run(brand, "customers", text)
    assert job.status == "succeeded", job.errors
    assert (job.rows_ok, job.rows_skipped) == (2, 0)
    first = Customer.objects.get(brand=brand, oneid=1)
    assert first.attributes == {
        "gender": "female", "age": 29, "city": "上海", "member_level": "金卡", "wecom_added": "yes",
    }  # fmt: skip
    again = run(brand, "customers", text)
    assert (again.rows_ok, again.rows_skipped) == (0, 2)
    assert again.created_counts == {"customers": 0, "identities": 0, "merges": 0}
    changed = run(brand, "customers", f"phone,age\n{PHONE},30\n")
    assert changed.rows_ok == 1
    first.refresh_from_db()
    assert first.attributes["age"] == 30 and first.attributes["city"] == "上海"
    bad = run(brand, "customers", f"phone,gender,age\n{PHONE},robot,-3\n")
    assert {(e["row"], e["column"]) for e in bad.errors} == {(2, "gender"), (2, "age")}


def test_identities_import_links_people(brand):
    run(brand, "events", EVENTS_CSV)  # two people: phone+oU1, and oU2
    job = run(brand, "identities", f"phone,wechat_unionid,wechat_openid,wechat_app\n{PHONE},oU2,oM9,wx_app\n")
    assert job.status == "succeeded", job.errors
    assert job.created_counts == {"customers": 0, "identities": 1, "merges": 1}
    merge = MergeRecord.objects.get()
    assert (merge.kept_oneid, merge.merged_oneid, merge.rule) == (1, 2, "wechat_unionid")
    assert merge.import_job == job
    assert Event.objects.filter(customer__oneid=1).count() == 4
    openid = Identity.objects.get(type="wechat_openid")
    assert (openid.app, openid.value) == ("wx_app", "oM9")


def test_progress_is_reported(brand):
    seen = []
    job = imports.import_file(brand, "events", csv_upload(EVENTS_CSV), progress=lambda *a: seen.append(a))
    stages = [stage for _done, _total, stage in seen]
    assert stages[0] == "reading" and "checking" in stages and "linking" in stages and stages[-1] == "writing"
    assert seen[-1][0] == seen[-1][1] == 4
    assert job.progress == 100 and job.stage == "done"


def test_import_command(brand, tmp_path, capsys):
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_CSV, encoding="utf-8")
    out = io.StringIO()
    call_command("import_data", str(path), brand=brand.code, kind="events", stdout=out)
    text = out.getvalue()
    assert "succeeded" in text and "writing" in text and "events 4" in text
    assert ImportJob.objects.get().file_name == "events.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("client_id,time,type,phone\nx,2024-05-01,nope,13800000000\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was written"):
        call_command(
            "import_data", str(bad), brand=brand.code, kind="events", stdout=io.StringIO(), stderr=err
        )
    assert "row 2 [type]" in err.getvalue()
    with pytest.raises(CommandError, match="unknown brand"):
        call_command("import_data", str(path), brand="nope", kind="events")


def test_prepare_is_pure_and_lists_links():
    frame = importers.read_table(csv_upload(EVENTS_CSV))
    prepared = importers.prepare("events", frame)
    assert prepared.ok and prepared.rows == 4
    assert prepared.links[["pos", "type"]].values.tolist() == [
        [0, "phone"], [0, "wechat_unionid"], [1, "phone"], [2, "wechat_unionid"], [3, "wechat_unionid"],
    ]  # fmt: skip
    assert (
        importers.file_format("x.parquet") == "parquet" and importers.file_format("x", b"PAR1") == "parquet"
    )


def test_reports_speak_the_portals_language(brand):
    from django.utils import translation

    with translation.override("zh-hans"):
        job = run(brand, "orders", "client_id,time,amount,chanel,jd_pin\nx,2024-05-01,10,store,j\n")
    messages = {e["column"]: e["message"] for e in job.errors}
    assert messages == {"chanel": "未知的列。自由属性请放在“properties.<键>”列中。"}
