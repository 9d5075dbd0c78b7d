"""People tagged directly on a platform (a journey's sync node), against the platform
fakes: the work queued as batches of a sync with no audience, the tag created once,
per-person refusals counted, people with no recipient left out, a killed worker's batch
taken again and applied once, and bad accounts refused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tagportal.activation import syncs
from tagportal.activation.models import AudienceSync, BatchState, SyncBatch

from .helpers import account
from .test_syncs import (
    mp,
    one_try_per_call,
    openid,
    people,
    runs_when_asked,
    shop_account,
    shops,
    wechat,
    wecom,
)

__all__ = ["mp", "one_try_per_call", "runs_when_asked", "shops", "wechat", "wecom"]


def test_wechat_people_are_queued_then_tagged_by_the_periodic_run(world, wechat, mp, sleeps):
    now = timezone.now()
    result = syncs.tag_people(mp, "推荐转化", [1, 2, 3, 500], now=now)
    assert (result["queued"], result["batches"], result["unreachable"]) == (3, 1, 1)
    assert result["reached"] == [1, 2, 3]
    assert wechat.calls["batchtagging"] == 0  # queued, not called in the caller's transaction
    assert syncs.run_due(now=now) == {BatchState.DONE: 1}
    sync = AudienceSync.objects.get(pk=result["sync"])
    assert sync.audience_id is None and sync.added == 3 and sync.unreachable == 1
    assert wechat.tags[int(sync.platform_tag_id)] == {openid(1), openid(2), openid(3)}
    # again with others: the same sync, the tag not created twice
    again = syncs.tag_people(mp, "推荐转化", [4], now=now)
    assert again["sync"] == sync.pk
    syncs.run_due(now=now)
    assert list(wechat.tag_names.values()).count("推荐转化") == 1
    assert openid(4) in wechat.tags[int(sync.platform_tag_id)]
    assert AudienceSync.objects.get(pk=sync.pk).added == 4


def test_wecom_refusals_are_counted_per_person(world, wecom, sleeps):
    obj = account(world.own_brand, "wecom")
    result = syncs.tag_people(obj, "召回成功", [1, 2, 3], options={"userid": "zhangsan"})
    assert syncs.run_due() == {BatchState.DONE: 1}
    batch = SyncBatch.objects.get(sync_id=result["sync"])
    assert batch.done_count == 2 and [r["recipient"] for r in batch.rejected] == ["wm-3"]
    assert [m["external_userid"] for m in wecom.marks] == ["wm-1", "wm-2"]
    assert wecom.tag_groups[0]["group_name"] == "召回成功"


def test_a_killed_workers_batch_is_taken_again_once(world, wechat, mp, sleeps):
    now = timezone.now()
    syncs.tag_people(mp, "复购", range(1, 11), now=now)
    [stale] = syncs.claim_due(now=now)
    assert syncs.run_due(now=now + dt.timedelta(seconds=61)) == {BatchState.DONE: 1}
    assert syncs.process(stale, now=now) == "taken"
    assert wechat.calls["batchtagging"] == 1


def test_weimob_needs_its_tag_id_and_youzan_tags_by_name(world, shops):
    weimob = shop_account(world.own_brand, "weimob")
    with pytest.raises(syncs.SyncRefused):
        syncs.tag_people(weimob, "复购", [1])
    people(world.own_brand, [1, 2], "crm_member_id", lambda i: str(9000 + i))
    result = syncs.tag_people(weimob, "复购", [1, 2, 3], options={"tag_id": "t-1"})
    assert (result["queued"], result["unreachable"]) == (2, 1)
    assert SyncBatch.objects.get(sync_id=result["sync"]).recipients == ["9001", "9002"]
    youzan = syncs.direct_sync(shop_account(world.own_brand, "youzan"), "复购")
    assert youzan.platform_tag_id == "复购"


def test_an_account_without_customer_tags_is_refused(world):
    with pytest.raises(syncs.SyncRefused):
        syncs.tag_people(account(world.own_brand, "webhook"), "复购", [1])
    assert not AudienceSync.objects.exists()
