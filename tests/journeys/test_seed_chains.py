"""The demo's seed journeys (``tagportal.demo.journeys``), started through the lifecycle
(proposer, another person approves) and run against the fake channel servers with a
moved clock: planted people whose visits and orders make them take each way, checked
by their steps and by what the fakes received."""

from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
import pytest

from tagportal.activation import deliveries, syncs, vault
from tagportal.catalog.services import publish_tag
from tagportal.demo import journeys as demo
from tagportal.engine.results import values_for
from tagportal.engine.services import store_values
from tagportal.journeys import runner, services
from tagportal.journeys.models import InstanceStep, JourneyInstance
from tagportal.profiles.models import Customer, Event, Order
from tests.activation.fakes import FakeWeChat, FakeWeCom
from tests.activation.fakes_channels import FakeAliyunSms, FakeYouzan
from tests.activation.helpers import account
from tests.activation.test_sms_and_shops import make
from tests.activation.test_syncs import people
from tests.factories import TagFactory

from .helpers import T0, live, no_quiet_hours

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)
_clients = itertools.count(1)


@pytest.fixture
def fakes(settings, httpserver):
    base = httpserver.url_for("/").rstrip("/")
    settings.TAGPORTAL_WECOM_API_BASE = settings.TAGPORTAL_WECHAT_API_BASE = base
    settings.TAGPORTAL_ALIYUN_SMS_ENDPOINT = settings.TAGPORTAL_YOUZAN_API_BASE = base
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1
    settings.TAGPORTAL_SYNC_RUN_AT_ONCE = False
    settings.TAGPORTAL_VAULT_KEYS = vault.generate_key()
    wecom = FakeWeCom(httpserver)
    wechat = FakeWeChat(httpserver)
    sms = FakeAliyunSms(httpserver)
    sms.templates.update(
        {"SMS_RECALL": ["coupon"], "SMS_PROBIOTIC": ["product"], "SMS_FIRST_ORDER": ["coupon"]}
    )  # the demo's template, approved at the fake
    return {"wecom": wecom, "wechat": wechat, "sms": sms, "youzan": FakeYouzan(httpserver)}


def tag(world, name: str, kind="manual", value_type="boolean", values=()):
    made = TagFactory(
        brand=world.own_brand,
        category=world.category,
        code=f"yimei_visit_{name}",
        name=name,
        kind=kind,
        value_type=value_type,
        values=list(values),
        definition={"type": "manual"},
    )
    publish_tag(made)
    return made


def holders(tag_, oneids, value) -> None:
    store_values(tag_, pd.Series([value] * len(oneids), index=pd.Index(oneids, dtype="int64", name="oneid")))


def phone(oneid: int) -> str:
    return f"1390000{oneid:04d}"


def reachable(brand, oneids, *, wecom=None, wechat=None) -> None:
    people(brand, oneids, "phone", phone)
    for oneid in oneids:
        vault.store(brand, oneid, phone(oneid))
    if wecom is not None:
        people(brand, oneids, "wecom_external_id", lambda i: f"wm-{i}")
        wecom.relationships.update((demo.GUIDE, f"wm-{i}") for i in oneids)
    if wechat is not None:
        people(brand, oneids, "wechat_openid", lambda i: f"o-{i:04d}", app="wx-app")
        wechat.openids.update(f"o-{i:04d}" for i in oneids)


def happen(brand, oneid: int, at: dt.datetime, *, order=False) -> None:
    customer = Customer.objects.get(brand=brand, oneid=oneid)
    if order:
        Order.objects.create(
            brand=brand, customer=customer, client_id=f"o{next(_clients)}", time=at, amount=199
        )
    else:
        Event.objects.create(
            brand=brand, customer=customer, client_id=f"e{next(_clients)}", type="store_visit", time=at
        )
    services.poll_activity(now=at)


def steps(journey) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list] = {}
    for oneid, node, outcome in (
        InstanceStep.objects.filter(instance__journey=journey)
        .order_by("instance__oneid", "pk")
        .values_list("instance__oneid", "node", "outcome")
    ):
        out.setdefault(oneid, []).append((node, outcome))
    return out


@pytest.fixture
def seeded(world, fakes):
    brand = world.own_brand
    no_quiet_hours(brand)
    account(brand, "wecom", name="瑞颜企业微信")
    make(brand, "sms_aliyun", name="瑞颜短信（阿里云）")
    make(brand, "youzan", name="瑞颜有赞商城")
    account(brand, "wechat_mp", name="花妍公众号")
    make(brand, "sms_aliyun", name="康源短信（阿里云）")
    make(brand, "sms_aliyun", name="清泉短信（阿里云）")
    tags = {
        "churn_risk": tag(world, "churn_risk", "algorithm", "enum", [{"code": "high", "label": "高"}]),
        "recall_success": tag(world, "recall_success"),
        "skin_test_done": tag(world, "skin_test_done", "behavior"),
        "new_member_30d": tag(world, "new_member_30d", "system"),
        "recommend_converted": tag(world, "recommend_converted"),
        "probiotic_cross_sell": tag(world, "probiotic_cross_sell", "behavior"),
        "aipl_stage": tag(world, "aipl_stage", "algorithm", "enum", [{"code": "interest", "label": "兴趣"}]),
    }
    services.start_cursors()
    return brand, tags


def start(world, name, build):
    journey = demo.start(world.own_brand, name, "", build(world.own_brand), world.operator, world.steward)
    assert journey.status == "live" and journey.live_version.approved_by == world.steward
    return journey


def test_churn_recall_wecom_then_sms_and_youzan_coupon_then_tag_the_visitors(world, fakes, seeded, sleeps):
    brand, tags = seeded
    reachable(brand, [1, 2, 3], wecom=fakes["wecom"])
    journey = start(world, "流失预警召回", demo.recall_chain)
    services.enter(live(journey), [1, 2, 3], now=T0)
    assert runner.tick(now=T0) == 3
    deliveries.deliver_due(now=T0)
    messages = list(fakes["wecom"].messages.values())  # one 1v1 message each, from the guide
    assert {m["sender"] for m in messages} == {demo.GUIDE}
    assert sorted(i for m in messages for i in m["ids"]) == ["wm-1", "wm-2", "wm-3"]

    happen(brand, 1, T0 + DAY)  # visits on day 1
    runner.tick(now=T0 + DAY)
    assert runner.tick(now=T0 + 2 * DAY) == 0
    day3 = T0 + 3 * DAY
    assert runner.tick(now=day3) == 2  # 2 and 3: no visit in 3 days
    deliveries.deliver_due(now=day3)
    assert sorted(n for s in fakes["sms"].sends for n in s["numbers"]) == [phone(2), phone(3)]
    assert syncs.run_due(now=day3) == {"done": 1}
    assert fakes["youzan"].relations == {("Mobile", phone(2), "召回礼券"), ("Mobile", phone(3), "召回礼券")}

    happen(brand, 2, day3 + 2 * DAY)  # visits on day 5
    runner.tick(now=day3 + 2 * DAY)
    runner.tick(now=day3 + 7 * DAY)
    assert steps(journey) == {
        1: [("in", "entered"), ("care", "sent"), ("v3", "happened"), ("t1", "tagged")],
        2: [("in", "entered"), ("care", "sent"), ("v3", "timeout"), ("sms", "sent"), ("coupon", "synced"),
            ("v7", "happened"), ("t2", "tagged")],
        3: [("in", "entered"), ("care", "sent"), ("v3", "timeout"), ("sms", "sent"), ("coupon", "synced"),
            ("v7", "timeout"), ("out", "exited")],
    }  # fmt: skip
    code = tags["recall_success"].code
    found = values_for(brand, [1, 2, 3], [code])
    assert found[1][code]["value"] is True and found[2][code]["value"] is True and found[3] == {}
    assert (
        len(fakes["sms"].sends) == 2 and fakes["sms"].duplicates == 0 and len(fakes["wecom"].messages) == 3
    )  # nothing sent twice


def test_new_skin_testers_get_a_recommendation_and_buyers_are_tagged(world, fakes, seeded, sleeps):
    brand, tags = seeded
    reachable(brand, [11, 12, 13], wechat=fakes["wechat"])
    holders(tags["new_member_30d"], [11, 12], True)
    journey = start(world, "新客肌肤测试推荐", demo.skin_test_chain)
    services.enter(live(journey), [11, 12, 13], now=T0)
    runner.tick(now=T0)
    deliveries.deliver_due(now=T0)
    assert sorted(s["touser"] for s in fakes["wechat"].sent) == ["o-0011", "o-0012"]
    happen(brand, 11, T0 + 2 * DAY, order=True)
    runner.tick(now=T0 + 2 * DAY)
    runner.tick(now=T0 + 7 * DAY)
    paths = dict(JourneyInstance.objects.filter(journey=journey).values_list("oneid", "path"))
    assert paths == {
        11: ["in", "new", "rec", "buy", "tag"],
        12: ["in", "new", "rec", "buy", "out"],
        13: ["in", "new"],  # not a new member: no message
    }
    code = tags["recommend_converted"].code
    found = values_for(brand, [11, 12], [code])
    assert found[11][code]["value"] is True and found[12] == {}
    assert journey.conversions.get().instance.oneid == 11


def test_aipl_interest_holdout_gets_no_send(world, fakes, seeded, sleeps):
    brand, _tags = seeded
    oneids = list(range(100, 140))
    reachable(brand, oneids, wechat=fakes["wechat"])
    journey = start(world, "AIPL 兴趣转购买", demo.aipl_chain)
    services.enter(live(journey), oneids, now=T0)
    runner.tick(now=T0)
    deliveries.deliver_due(now=T0)
    groups = dict(JourneyInstance.objects.filter(journey=journey).values_list("oneid", "group"))
    holdout = {o for o, g in groups.items() if g == "holdout"}
    assert holdout and len(holdout) < 15
    sent_to = {int(s["touser"][2:]) for s in fakes["wechat"].sent}
    assert sent_to == set(oneids) - holdout
    rows = JourneyInstance.objects.filter(journey=journey).values_list("oneid", "path", "node")
    for oneid, path, node in rows:  # the treatment waits for an order; the holdout is done
        assert (path, node) == ((["in", "ab"], "ab") if oneid in holdout else (["in", "ab", "push"], "buy"))
    assert not InstanceStep.objects.filter(instance__oneid__in=holdout, node="push").exists()
    buyer = min(holdout)  # a holdout buyer converts too (uplift)
    happen(brand, buyer, T0 + DAY, order=True)
    assert journey.conversions.get().instance.oneid == buyer


@pytest.mark.parametrize(
    ("name", "build", "sms_at"),
    [("益生菌交叉销售", demo.health_chain, T0), ("新会员首单", demo.food_chain, T0 + DAY)],
)
def test_sms_chains_convert_the_buyers_and_end_the_others(world, fakes, seeded, sleeps, name, build, sms_at):
    brand, _tags = seeded
    reachable(brand, [31, 32])
    journey = start(world, name, build)
    services.enter(live(journey), [31, 32], now=T0)
    runner.tick(now=T0)
    runner.tick(now=sms_at)
    deliveries.deliver_due(now=sms_at)
    assert sorted(n for s in fakes["sms"].sends for n in s["numbers"]) == [phone(31), phone(32)]
    happen(brand, 31, sms_at + 2 * DAY, order=True)
    runner.tick(now=sms_at + 7 * DAY)
    states = dict(JourneyInstance.objects.filter(journey=journey).values_list("oneid", "state"))
    assert states == {31: "converted", 32: "done"}
    assert dict(
        InstanceStep.objects.filter(instance__journey=journey, node="buy").values_list(
            "instance__oneid", "outcome"
        )
    ) == {32: "timeout"}
