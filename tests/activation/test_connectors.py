"""The WeCom, group-robot and signed-webhook clients against fakes that enforce the
platforms' contracts: one token for many calls, one refetch on an invalid token, 45009
retried, final errors not retried, 10,000 recipients a call, 20 robot messages a minute,
signatures the receiver verifies, retries only on connection errors, 429 and 5xx."""

from __future__ import annotations

import time

import pytest

from tagportal.activation.connectors.base import ChannelError, RateLimited, acquire
from tagportal.activation.connectors.robot import RobotClient
from tagportal.activation.connectors.webhook import WebhookClient
from tagportal.activation.connectors.wecom import TagNameTooLong, WeComClient

from .fakes import FakeReceiver, FakeRobot, FakeWeCom
from .helpers import account

pytestmark = pytest.mark.django_db


@pytest.fixture
def wecom(platform):
    fake = FakeWeCom(platform)
    fake.relationships = {("zhangsan", f"wm{i}") for i in range(5)}
    return fake


@pytest.fixture
def client(world, wecom):
    return WeComClient(account(world.own_brand))


def test_one_token_fetch_serves_many_calls(client, wecom, sleeps):
    for i in range(30):
        client.mark_tag("zhangsan", f"wm{i % 5}", add_tag=["tag-1"])
    assert wecom.gettoken_calls == 1
    assert wecom.calls["mark_tag"] == 30
    # a second client of the same account (another worker) shares the cached token
    WeComClient(client.account).mark_tag("zhangsan", "wm0", add_tag=["tag-1"])
    assert wecom.gettoken_calls == 1


@pytest.mark.parametrize("code", [42001, 40014])
def test_invalid_token_is_fetched_again_once(client, wecom, code, sleeps):
    client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    wecom.fail_token_once = code
    client.mark_tag("zhangsan", "wm1", add_tag=["t"])
    assert wecom.gettoken_calls == 2
    assert wecom.calls["mark_tag"] == 3
    assert len(wecom.marks) == 2
    assert sleeps == []


def test_an_expired_token_is_refetched(world, platform, sleeps):
    fake = FakeWeCom(platform, ttl=1)  # shorter than the margin: kept half its life
    fake.relationships = {("zhangsan", "wm0")}
    client = WeComClient(account(world.own_brand))
    client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    fake.clock = lambda: time.monotonic() + 5  # the platform's clock moved past the expiry
    client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    assert fake.gettoken_calls == 2
    assert len(fake.marks) == 2


def test_a_token_refused_twice_is_a_final_error(client, wecom, sleeps):
    client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    wecom.refuse_tokens = True  # every token, new ones too, is refused: 40014 each time
    with pytest.raises(ChannelError) as caught:
        client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    assert caught.value.code == 40014 and not caught.value.retryable
    assert wecom.gettoken_calls == 2  # one refetch, not a loop


def test_frequency_limit_is_retried_with_backoff_then_succeeds(client, wecom, sleeps):
    wecom.busy = 2
    client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    assert wecom.calls["mark_tag"] == 3
    assert len(wecom.marks) == 1
    assert len(sleeps) == 2 and all(0 < s <= 30 for s in sleeps)


def test_frequency_limit_retries_are_bounded(client, wecom, sleeps, settings):
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 3
    wecom.busy = 10
    with pytest.raises(ChannelError) as caught:
        client.mark_tag("zhangsan", "wm0", add_tag=["t"])
    assert caught.value.code == 45009
    assert wecom.calls["mark_tag"] == 3


def test_no_relationship_is_final_and_not_retried(client, wecom, sleeps):
    with pytest.raises(ChannelError) as caught:
        client.mark_tag("zhangsan", "stranger", add_tag=["t"])
    assert caught.value.code == 84061 and not caught.value.retryable
    assert wecom.calls["mark_tag"] == 1
    assert sleeps == []


def test_no_content_41048_is_final(client, wecom, sleeps):
    with pytest.raises(ChannelError) as caught:
        client.add_msg_template("zhangsan", ["wm0"], text="")
    assert caught.value.code == 41048
    assert wecom.calls["add_msg_template"] == 1


def test_10001_recipients_take_two_calls_and_read_back_per_customer(client, wecom, sleeps):
    ids = [f"wm{i}" for i in range(10_001)]
    results = client.add_msg_template("zhangsan", ids, text="双十一会员专享")
    assert wecom.calls["add_msg_template"] == 2
    assert [len(r["external_userid"]) for r in results] == [10_000, 1]
    assert len(results[0]["fail_list"]) == 10_000 - 5  # only wm0..wm4 are friends
    assert results[1]["fail_list"] == ["wm10000"]
    rows = client.get_groupmsg_send_result(results[0]["msgid"], "zhangsan")
    assert len(rows) == 10_000  # read across pages of 1,000
    assert {r["status"] for r in rows if r["external_userid"] == "wm3"} == {"sent"}
    assert {r["status"] for r in rows if r["external_userid"] == "wm9"} == {"not_friend"}


def test_tags_added_listed_and_marked(client, wecom, sleeps):
    group = client.add_corp_tag(["高价值", "沉睡客户"], group_name="TagPortal 人群")
    assert [t["name"] for t in group["tag"]] == ["高价值", "沉睡客户"]
    assert client.get_corp_tag_list()[0]["group_name"] == "TagPortal 人群"
    client.mark_tag("zhangsan", "wm1", add_tag=[group["tag"][0]["id"]], remove_tag=["old"])
    assert wecom.marks[-1]["add_tag"] == [group["tag"][0]["id"]]
    assert wecom.marks[-1]["remove_tag"] == ["old"]


def test_a_tag_name_over_30_characters_is_refused_before_calling(client, wecom):
    with pytest.raises(TagNameTooLong, match="30 characters"):
        client.add_corp_tag(["标" * 31], group_name="g")
    assert wecom.calls["add_corp_tag"] == 0 and wecom.gettoken_calls == 0


# group robot -----------------------------------------------------------------
def test_robot_limiter_never_lets_a_21st_message_reach_the_platform(world, platform, sleeps):
    robot = FakeRobot(platform)
    client = RobotClient(account(world.own_brand, "wecom_robot"))
    limited = 0
    for i in range(25):
        try:
            client.send("text", f"第 {i} 条")
        except RateLimited as exc:
            assert 0 < exc.retry_after <= 60
            limited += 1
    assert robot.count() == 20
    assert limited == 5
    assert robot.refused == 0


def test_robot_waits_for_its_window_when_allowed(world, platform, settings):
    settings.TAGPORTAL_WECOM_ROBOT_RATE = "3/second"
    # the fake sees arrivals a few milliseconds off our clock: it counts a slightly shorter window
    robot = FakeRobot(platform, per_window=3, window=0.95)
    client = RobotClient(account(world.own_brand, "wecom_robot"))
    started = time.monotonic()
    for i in range(5):
        client.send("markdown", f"**{i}**", wait=3)
    assert robot.count() == 5 and robot.refused == 0
    assert time.monotonic() - started >= 0.9


def test_robot_message_shapes(world):
    assert RobotClient.message("text", "hi") == {"msgtype": "text", "text": {"content": "hi"}}
    with pytest.raises(ValueError):
        RobotClient.message("image", "x")
    with pytest.raises(ValueError):
        RobotClient.message("text", "x" * 2049)
    with pytest.raises(ValueError):
        RobotClient.message("news", [{"title": "t"}] * 9)


def test_limiter_moves_its_window(settings):
    acquire("k", "2/second")
    acquire("k", "2/second")
    with pytest.raises(RateLimited):
        acquire("k", "2/second")
    acquire("other", "2/second")  # windows are per key


# signed webhook ---------------------------------------------------------------
@pytest.fixture
def receiver(platform):
    return FakeReceiver(platform)


@pytest.fixture
def hook(world, platform, receiver):
    return WebhookClient(
        account(world.own_brand, "webhook", settings={"url": platform.url_for(receiver.path)})
    )


def test_webhook_is_signed_and_verified_by_the_receiver(hook, receiver, sleeps):
    assert hook.post({"person": "crm-1", "template": "welcome"}, idempotency_key="d-1") == 204
    assert receiver.verified == 1
    assert receiver.received["d-1"] == {"person": "crm-1", "template": "welcome"}


def test_webhook_with_a_wrong_secret_is_refused_and_not_retried(hook, receiver, sleeps):
    hook.secret = "forged"
    with pytest.raises(ChannelError) as caught:
        hook.post({"a": 1}, idempotency_key="d-2")
    assert caught.value.code == 401 and receiver.calls == 1


def test_webhook_retries_5xx_and_429_with_capped_retry_after(hook, receiver, sleeps, settings):
    settings.TAGPORTAL_CHANNEL_RETRY_MAX_SECONDS = 5
    receiver.statuses = [(503, {}), (429, {"Retry-After": "3600"})]
    assert hook.post({"a": 1}, idempotency_key="d-3") == 204
    assert receiver.calls == 3
    assert sleeps[1] == 5  # the hour asked for, capped


@pytest.mark.parametrize("status", [400, 404, 410])
def test_webhook_client_errors_are_final(hook, receiver, sleeps, status):
    receiver.statuses = [(status, {})]
    with pytest.raises(ChannelError) as caught:
        hook.post({"a": 1}, idempotency_key="d-4")
    assert caught.value.code == status and receiver.calls == 1


def test_webhook_connection_errors_are_retried(world, sleeps, settings):
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 2
    client = WebhookClient(account(world.own_brand, "webhook", settings={"url": "http://127.0.0.1:9/x"}))
    with pytest.raises(ChannelError) as caught:
        client.post({"a": 1}, idempotency_key="d-5")
    assert caught.value.code == "connection" and len(sleeps) == 1
