"""Audience syncs to a channel's customer tag, against the platform fakes: the first run
tags everyone, later snapshots add who joined and remove who left (a skipped snapshot
diffed over), 公众号 calls of at most 50 openids, retries after a frequency error, final
refusals not retried, a batch taken again after its lease ran out applied once, the API's
4xx answers, and the page."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone
from pyroaring import BitMap

from tagportal.activation import syncs, vault
from tagportal.activation.models import AudienceSync, BatchState, SyncBatch, SyncStatus, VaultAccess
from tagportal.activation.tasks import DEFAULT_SCHEDULES, ensure_default_schedules
from tagportal.audiences import services as audience_services
from tagportal.audiences.choices import RefreshTrigger
from tagportal.audiences.models import Audience
from tagportal.profiles import pii
from tagportal.profiles.models import Customer, Identity
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import UsageBuffer
from tests.conftest import client_for

from ..api.contract import ReadContract, Resource, ScopedContract, once
from .fakes import FakeWeChat, FakeWeCom
from .fakes_channels import FakeWeimob, FakeYouzan
from .helpers import account

URL = "/api/activation/syncs/"
LATER = dt.timedelta(hours=2)


@pytest.fixture(autouse=True)
def runs_when_asked(settings):
    """The batches run when a test calls ``run_due`` (at the times it gives), not at once."""
    settings.TAGPORTAL_SYNC_RUN_AT_ONCE = False


@pytest.fixture(autouse=True)
def one_try_per_call(settings):
    """The clients' own retries off: the batches' retries are what is tested."""
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1
    settings.TAGPORTAL_DELIVERY_BACKOFF_SECONDS = 10
    settings.TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS = 100
    settings.TAGPORTAL_DELIVERY_MAX_ATTEMPTS = 3
    settings.TAGPORTAL_SYNC_LEASE_SECONDS = 60


def make_audience(world, brand=None, owner=None) -> Audience:
    brand = brand or world.own_brand
    tag = world.own_tag if brand == world.own_brand else world.other_tag
    audience = Audience.objects.create(
        name="近访油皮",
        brand=brand,
        business_line=brand.business_line,
        owner=owner or world.operator,
        expression={"tag": tag.code, "op": "is_set"},
    )
    audience.tags.add(tag)
    return audience


def people(brand, oneids, type_, value_of, app=""):
    for oneid in oneids:
        customer, _ = Customer.objects.get_or_create(brand=brand, oneid=oneid)
        value = value_of(oneid)
        Identity.objects.create(
            brand=brand,
            customer=customer,
            type=type_,
            app=app,
            value_hash=pii.hash_value(type_, value),
            value="" if type_ == "phone" else value,
            masked=pii.mask(type_, value),
        )


def snapshot(audience, oneids, capture):
    with capture(execute=True):
        return audience_services.take_snapshot(audience, BitMap(oneids), 1000, trigger=RefreshTrigger.MANUAL)


def openid(oneid: int) -> str:
    return f"o-{oneid:04d}"


@pytest.fixture
def wechat(world, wechat_platform):
    fake = FakeWeChat(wechat_platform)
    fake.openids.update(openid(i) for i in range(1, 200))
    people(world.own_brand, range(1, 200), "wechat_openid", openid, app="wx-app")
    return fake


@pytest.fixture
def mp(world, wechat):
    return account(world.own_brand, "wechat_mp")


# full, then incremental -------------------------------------------------------------
def test_first_run_tags_everyone_in_50_openid_calls_then_snapshots_add_and_remove(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, range(1, 121), django_capture_on_commit_callbacks)

    sync = syncs.create_sync(world.operator, audience, mp, "近访油皮")
    assert sync.queued_number == 1 and sync.synced_number is None
    assert [len(b.recipients) for b in sync.batches.order_by("pk")] == [50, 50, 20]
    assert UsageBuffer.objects.filter(
        tag_id=world.own_tag.pk, kind=UsageKind.ACTIVATION, client=world.operator.pk
    ).exists()

    assert syncs.run_due() == {BatchState.DONE: 3}
    sync.refresh_from_db()
    tagid = int(sync.platform_tag_id)
    assert wechat.tag_names[tagid] == "近访油皮"
    assert wechat.tags[tagid] == {openid(i) for i in range(1, 121)}
    assert wechat.calls["batchtagging"] == 3 and wechat.calls["tags_create"] == 1
    assert (sync.synced_number, sync.added, sync.removed) == (1, 120, 0)

    # 1–10 leave, 121–130 join: the receiver of snapshot_taken queues the diff
    snapshot(audience, range(11, 131), django_capture_on_commit_callbacks)
    sync.refresh_from_db()
    assert sync.queued_number == 2
    assert syncs.run_due() == {BatchState.DONE: 2}
    sync.refresh_from_db()
    assert wechat.tags[tagid] == {openid(i) for i in range(11, 131)}
    assert wechat.calls["batchuntagging"] == 1 and wechat.calls["tags_create"] == 1
    assert (sync.synced_number, sync.added, sync.removed) == (2, 10, 10)


def test_snapshots_skipped_while_paused_are_one_diff_against_the_synced_one(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, range(1, 11), django_capture_on_commit_callbacks)
    sync = syncs.create_sync(world.operator, audience, mp, "复购")
    syncs.run_due()
    syncs.pause(world.operator, sync)

    snapshot(audience, range(5, 21), django_capture_on_commit_callbacks)  # #2
    snapshot(audience, range(8, 16), django_capture_on_commit_callbacks)  # #3
    assert not SyncBatch.objects.filter(sync=sync, number__gt=1).exists()

    syncs.resume(world.operator, sync)
    assert set(SyncBatch.objects.filter(sync=sync, number__gt=1).values_list("number", flat=True)) == {3}
    syncs.run_due()
    sync.refresh_from_db()
    assert wechat.tags[int(sync.platform_tag_id)] == {openid(i) for i in range(8, 16)}
    assert (sync.synced_number, sync.added, sync.removed) == (3, 5, 7)


def test_people_without_an_openid_are_counted_unreachable(
    world, wechat, mp, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, [1, 2, 500, 501], django_capture_on_commit_callbacks)
    sync = syncs.create_sync(world.operator, audience, mp, "近访")
    assert sync.unreachable == 2
    assert SyncBatch.objects.get(sync=sync).recipients == [openid(1), openid(2)]


# retries and final failures ----------------------------------------------------------
def test_a_frequency_error_is_retried_after_the_backoff(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, range(1, 4), django_capture_on_commit_callbacks)
    now = timezone.now()
    sync = syncs.create_sync(world.operator, audience, mp, "复购", now=now)
    syncs.run_due(now=now)  # the tag is created first
    wechat.busy = 1
    SyncBatch.objects.filter(sync=sync).update(state=BatchState.QUEUED, attempts=0)
    wechat.tags[int(AudienceSync.objects.get(pk=sync.pk).platform_tag_id)].clear()

    assert syncs.run_due(now=now) == {BatchState.QUEUED: 1}
    batch = SyncBatch.objects.get(sync=sync)
    assert batch.attempts == 1 and batch.next_attempt_at > now and "45009" in batch.last_error
    assert syncs.run_due(now=now) == {}  # not due yet
    assert syncs.run_due(now=now + LATER) == {BatchState.DONE: 1}
    batch.refresh_from_db()
    assert batch.attempts == 2
    sync.refresh_from_db()
    assert wechat.tags[int(sync.platform_tag_id)] == {openid(i) for i in range(1, 4)}


def test_retryable_errors_fail_the_batch_once_the_attempts_are_used(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, [1], django_capture_on_commit_callbacks)
    now = timezone.now()
    sync = syncs.create_sync(world.operator, audience, mp, "复购", now=now)
    wechat.busy = 10
    for hours in range(3):
        syncs.run_due(now=now + dt.timedelta(hours=hours))
    batch = SyncBatch.objects.get(sync=sync)
    assert (batch.state, batch.attempts) == (BatchState.FAILED, 3)
    sync.refresh_from_db()
    assert "45009" in sync.last_error and sync.synced_number == 1


@pytest.fixture
def wecom(world, platform):
    fake = FakeWeCom(platform)
    people(world.own_brand, range(1, 5), "wecom_external_id", lambda i: f"wm-{i}")
    fake.relationships.update({("zhangsan", "wm-1"), ("zhangsan", "wm-2")})
    return fake


def test_wecom_tag_is_created_in_its_group_and_a_non_friend_is_refused_without_retry(
    world, wecom, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, [1, 2, 3], django_capture_on_commit_callbacks)
    obj = account(world.own_brand, "wecom")
    sync = syncs.create_sync(
        world.operator, audience, obj, "近访油皮", tag_group="TagPortal", options={"userid": "zhangsan"}
    )
    assert syncs.run_due() == {BatchState.DONE: 1}
    sync.refresh_from_db()
    group = wecom.tag_groups[0]
    assert group["group_name"] == "TagPortal" and group["tag"][0]["id"] == sync.platform_tag_id
    assert [m["external_userid"] for m in wecom.marks] == ["wm-1", "wm-2"]
    assert all(m["add_tag"] == [sync.platform_tag_id] for m in wecom.marks)
    assert wecom.calls["mark_tag"] == 3  # wm-3 refused once, not retried
    assert (sync.added, sync.rejected) == (2, 1) and "84061" in sync.last_error

    # a batch of nobody's friends (wm-4 joins, wm-3 leaves): each fails, finally
    snapshot(audience, [1, 2, 4], django_capture_on_commit_callbacks)
    assert syncs.run_due(now=timezone.now()) == {BatchState.FAILED: 2}
    assert syncs.run_due(now=timezone.now() + LATER) == {}
    failed = SyncBatch.objects.get(sync=sync, number=2, op="add")
    assert failed.attempts == 1 and failed.rejected[0]["code"] == "84061"
    assert wecom.calls["mark_tag"] == 5
    sync.refresh_from_db()
    assert (sync.synced_number, sync.added, sync.removed, sync.rejected) == (2, 0, 0, 2)


def test_a_final_platform_error_fails_the_batch_without_retry(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, [1, 2], django_capture_on_commit_callbacks)
    sync = syncs.create_sync(world.operator, audience, mp, "复购")
    AudienceSync.objects.filter(pk=sync.pk).update(platform_tag_id="999")  # a tag deleted on the platform
    assert syncs.run_due() == {BatchState.FAILED: 1}
    assert syncs.run_due(now=timezone.now() + LATER) == {}
    assert wechat.calls["batchtagging"] == 1
    assert "45159" in AudienceSync.objects.get(pk=sync.pk).last_error


# leases --------------------------------------------------------------------------------
def test_a_batch_taken_again_after_its_lease_is_applied_once(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, range(1, 31), django_capture_on_commit_callbacks)
    now = timezone.now()
    sync = syncs.create_sync(world.operator, audience, mp, "复购", now=now)
    [stale] = syncs.claim_due(now=now)  # a worker claims it and is killed
    assert syncs.run_due(now=now) == {}  # still under its lease
    assert syncs.run_due(now=now + dt.timedelta(seconds=61)) == {BatchState.DONE: 1}
    assert syncs.process(stale, now=now) == "taken"  # the dead worker's claim writes nothing
    sync.refresh_from_db()
    assert wechat.calls["batchtagging"] == 1
    assert (sync.added, sync.synced_number) == (30, 1)
    assert SyncBatch.objects.get(sync=sync).attempts == 2


def test_a_later_snapshot_waits_for_the_earlier_one(
    world, wechat, mp, sleeps, django_capture_on_commit_callbacks
):
    audience = make_audience(world)
    snapshot(audience, [1, 2], django_capture_on_commit_callbacks)
    now = timezone.now()
    sync = syncs.create_sync(world.operator, audience, mp, "复购", now=now)
    snapshot(audience, [2, 3], django_capture_on_commit_callbacks)
    SyncBatch.objects.filter(sync=sync, number=1).update(next_attempt_at=now + LATER)
    assert syncs.run_due(now=now + dt.timedelta(seconds=1)) == {}
    assert syncs.run_due(now=now + LATER) == {BatchState.DONE: 3}
    assert wechat.tags[int(AudienceSync.objects.get(pk=sync.pk).platform_tag_id)] == {openid(2), openid(3)}


# Youzan and Weimob ---------------------------------------------------------------------
@pytest.fixture
def shops(settings, httpserver):
    base = httpserver.url_for("/").rstrip("/")
    settings.TAGPORTAL_YOUZAN_API_BASE = base
    settings.TAGPORTAL_WEIMOB_API_BASE = base
    return httpserver


def shop_account(brand, kind):
    from .test_sms_and_shops import make

    return make(brand, kind)


def test_youzan_tags_by_mobile_read_from_the_vault(
    world, shops, settings, sleeps, django_capture_on_commit_callbacks
):
    settings.TAGPORTAL_VAULT_KEYS = Fernet.generate_key().decode()
    fake = FakeYouzan(shops)
    phones = {1: "13800000001", 2: "13800000002", 3: "13800000003"}
    people(world.own_brand, phones, "phone", phones.get)
    for oneid in (1, 2):
        vault.store(world.own_brand, oneid, phones[oneid])
    audience = make_audience(world)
    snapshot(audience, [1, 2, 3], django_capture_on_commit_callbacks)
    sync = syncs.create_sync(world.operator, audience, shop_account(world.own_brand, "youzan"), "复购")
    fake.busy = 1  # 调用频率超过限制: retried later
    assert syncs.run_due() == {BatchState.QUEUED: 1}
    assert syncs.run_due(now=timezone.now() + LATER) == {BatchState.DONE: 1}
    assert fake.relations == {("Mobile", phones[1], "复购"), ("Mobile", phones[2], "复购")}
    batch = SyncBatch.objects.get(sync=sync)
    assert all(phone not in str(batch.recipients) + str(batch.rejected) for phone in phones.values())
    assert batch.rejected[0]["code"] == "no_contact"
    assert VaultAccess.objects.filter(purpose=f"audience sync {sync.pk}").count() >= 2


def test_weimob_binds_the_given_tag_by_wid_a_hundred_a_call(
    world, shops, sleeps, django_capture_on_commit_callbacks
):
    fake = FakeWeimob(shops)
    people(world.own_brand, range(1, 151), "crm_member_id", lambda i: str(9000 + i))
    audience = make_audience(world)
    snapshot(audience, range(1, 151), django_capture_on_commit_callbacks)
    sync = syncs.create_sync(
        world.operator, audience, shop_account(world.own_brand, "weimob"), "复购", options={"tag_id": "t-77"}
    )
    assert syncs.run_due() == {BatchState.DONE: 2}
    assert fake.calls["bind"] == 2 and len(fake.bound) == 150 and (9001, "t-77") in fake.bound
    snapshot(audience, range(1, 101), django_capture_on_commit_callbacks)
    syncs.run_due()
    assert len(fake.bound) == 100 and AudienceSync.objects.get(pk=sync.pk).removed == 50


# refusals, the API and the page -------------------------------------------------------------
def test_create_sync_refusals(world, django_capture_on_commit_callbacks):
    audience = make_audience(world)
    mp = account(world.own_brand, "wechat_mp")
    webhook = account(world.own_brand, "webhook")
    other = account(world.other_brand, "wechat_mp")
    with pytest.raises(syncs.SyncRefused, match="WeCom, 公众号, Youzan or Weimob"):
        syncs.create_sync(world.operator, audience, webhook, "x")
    with pytest.raises(syncs.SyncRefused, match="another brand"):
        syncs.create_sync(world.admin, audience, other, "x")
    with pytest.raises(syncs.SyncRefused, match="1 to 30"):
        syncs.create_sync(world.operator, audience, mp, "长" * 31)
    wecom = account(world.own_brand, "wecom")
    with pytest.raises(syncs.SyncRefused, match="userid"):
        syncs.create_sync(world.operator, audience, wecom, "x", tag_group="g")
    archived = make_audience(world)
    Audience.objects.filter(pk=archived.pk).update(status="archived")
    archived.refresh_from_db()
    with pytest.raises(syncs.SyncRefused, match="archived"):
        syncs.create_sync(world.operator, archived, mp, "x")
    syncs.create_sync(world.operator, audience, mp, "x")
    with pytest.raises(syncs.SyncRefused, match="already"):
        syncs.create_sync(world.operator, audience, mp, "x")
    assert AudienceSync.objects.count() == 1


def test_api_creates_lists_pauses_and_resumes(world, django_capture_on_commit_callbacks):
    audience = make_audience(world)
    mp = account(world.own_brand, "wechat_mp")
    client = client_for(world.operator)
    created = client.post(URL, {"audience": audience.pk, "account": mp.pk, "tag_name": "近访"}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["status"] == SyncStatus.ACTIVE and created.json()["kind"] == "wechat_mp"
    assert [row["id"] for row in client.get(URL).json()["results"]] == [pk]
    paused = client.post(f"{URL}{pk}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == SyncStatus.PAUSED
    assert client.post(f"{URL}{pk}/resume/").json()["status"] == SyncStatus.ACTIVE
    assert client_for(world.analyst).post(f"{URL}{pk}/pause/").status_code == 403


@pytest.mark.parametrize(
    "case",
    [
        "unknown audience",
        "other brand's account",
        "wrong kind",
        "over-long name",
        "no wecom userid",
        "duplicate",
        "no audience",
    ],
)
def test_api_refuses_bad_input_with_400(world, case):
    audience = make_audience(world)
    mp = account(world.own_brand, "wechat_mp")
    body = {"audience": audience.pk, "account": mp.pk, "tag_name": "近访"}
    if case == "unknown audience":
        body["audience"] = make_audience(world, brand=world.other_brand, owner=world.admin).pk
    elif case == "other brand's account":
        body["account"] = account(world.other_brand, "wechat_mp").pk
    elif case == "wrong kind":
        body["account"] = account(world.own_brand, "webhook").pk
    elif case == "over-long name":
        body["tag_name"] = "长" * 31
    elif case == "no wecom userid":
        body.update(account=account(world.own_brand, "wecom").pk, tag_group="TagPortal")
    elif case == "no audience":
        body["audience"] = None
    else:
        syncs.create_sync(world.operator, audience, mp, "近访")
    answer = client_for(world.operator).post(URL, body, format="json")
    assert answer.status_code == 400, answer.content
    assert AudienceSync.objects.count() == (1 if case == "duplicate" else 0)


def test_direct_tagging_syncs_are_not_listed(world):
    syncs.tag_people(account(world.own_brand, "wechat_mp"), "推荐转化", [1])
    assert AudienceSync.objects.filter(audience__isnull=True).count() == 1
    assert client_for(world.admin).get(URL).json()["count"] == 0


def test_another_business_lines_sync_is_404(world):
    audience = make_audience(world, brand=world.other_brand, owner=world.admin)
    sync = syncs.create_sync(world.admin, audience, account(world.other_brand, "wechat_mp"), "x")
    client = client_for(world.operator)
    assert client.get(f"{URL}{sync.pk}/").status_code == 404
    assert client.post(f"{URL}{sync.pk}/pause/").status_code == 404
    assert client.get(URL).json()["results"] == []


def test_the_page_lists_syncs_and_creates_one(world):
    from django.test import Client

    audience = make_audience(world)
    mp = account(world.own_brand, "wechat_mp")
    account(world.own_brand, "webhook")
    client = Client()
    page = f"/activation/audiences/{audience.pk}/sync/"
    assert client.get(page).status_code == 302  # login first
    client.force_login(world.operator)
    response = client.get(page)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="tp-sync-form"' in body and mp.name in body and "webhook account" not in body
    posted = client.post(page, {"account": mp.pk, "tag_name": "长" * 31})
    assert posted.status_code == 200 and "1 to 30" in posted.content.decode()
    posted = client.post(page, {"account": mp.pk, "tag_name": "近访"})
    assert posted.status_code == 302
    assert "近访" in client.get(page).content.decode()
    assert AudienceSync.objects.get().created_by == world.operator
    detail = client.get(f"/audiences/{audience.pk}/")
    assert page in detail.content.decode()

    other = make_audience(world, brand=world.other_brand, owner=world.admin)
    assert client.get(f"/activation/audiences/{other.pk}/sync/").status_code == 404


def test_the_periodic_task_is_registered(world):
    from django_celery_beat.models import PeriodicTask

    assert any(entry["task"] == "tagportal.activation.tasks.run_syncs" for entry in DEFAULT_SCHEDULES)
    ensure_default_schedules()
    assert PeriodicTask.objects.filter(task="tagportal.activation.tasks.run_syncs", enabled=True).exists()


def test_the_admin_lists_syncs_and_their_batches(world, django_capture_on_commit_callbacks):
    from django.test import Client

    audience = make_audience(world)
    snapshot(audience, [1], django_capture_on_commit_callbacks)
    syncs.create_sync(world.operator, audience, account(world.own_brand, "wechat_mp"), "近访复购")
    client = Client()
    client.force_login(world.admin)
    listed = client.get("/admin/activation/audiencesync/")
    assert listed.status_code == 200 and "近访复购" in listed.content.decode()
    assert client.get("/admin/activation/syncbatch/").status_code == 200


# the API's read contract --------------------------------------------------------------
def _sync(world, brand):
    audience = make_audience(world, brand)
    hook_account = account(brand, "wechat_mp", name=f"contract 公众号 {brand.code}")
    return AudienceSync.objects.create(audience=audience, account=hook_account, tag_name="契约测试")


class TestSyncsContract(Resource, ReadContract, ScopedContract):
    url = "/api/activation/syncs/"
    model = AudienceSync

    def user(self, world):
        return world.operator

    def permitted(self, world):
        return once(world, "_own_sync", lambda: _sync(world, world.own_brand))

    def other(self, world):
        return once(world, "_other_sync", lambda: _sync(world, world.other_brand))


def test_queued_work_runs_at_once_without_waiting_for_the_periodic_task(
    world, wechat, mp, sleeps, settings, django_capture_on_commit_callbacks
):
    settings.TAGPORTAL_SYNC_RUN_AT_ONCE = True
    audience = make_audience(world)
    snapshot(audience, range(1, 6), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        sync = syncs.create_sync(world.operator, audience, mp, "即时同步")
    sync.refresh_from_db()
    assert (sync.synced_number, sync.added) == (1, 5)
    snapshot(audience, range(2, 7), django_capture_on_commit_callbacks)  # the receiver queues and runs
    sync.refresh_from_db()
    assert (sync.synced_number, sync.added, sync.removed) == (2, 1, 1)
    assert syncs.run_due() == {}
