"""The sync_tag node: the people of one node and tick tagged on the 公众号 fake through
one queued batch of activation's direct sync, applied by the periodic sync run; nobody
tagged when the runner's transaction rolls back; people with no openid unreachable."""

from __future__ import annotations

import pytest

from tagportal.activation import syncs
from tagportal.activation.models import AudienceSync, BatchState, SyncBatch
from tagportal.journeys import runner
from tagportal.journeys.models import InstanceStep
from tests.activation.fakes import FakeWeChat
from tests.activation.helpers import account
from tests.activation.test_syncs import openid, people

from .helpers import T0, chain, enter, entry, make_journey


@pytest.fixture(autouse=True)
def runs_when_asked(settings):
    settings.TAGPORTAL_SYNC_RUN_AT_ONCE = False
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1


def test_the_nodes_people_are_tagged_in_one_batch(world, wechat_platform, sleeps):
    fake = FakeWeChat(wechat_platform)
    fake.openids.update(openid(i) for i in range(1, 6))
    people(world.own_brand, range(1, 6), "wechat_openid", openid, app="wx-app")
    mp = account(world.own_brand, "wechat_mp")
    journey = make_journey(
        world.own_brand, chain(entry(), ("sy", "sync_tag", {"account": mp.pk, "tag_name": "推荐转化"}))
    )
    enter(journey, [1, 2, 3, 4, 5, 99])
    runner.tick(now=T0)
    steps = dict(InstanceStep.objects.filter(node="sy").values_list("instance__oneid", "outcome"))
    assert steps == {1: "synced", 2: "synced", 3: "synced", 4: "synced", 5: "synced", 99: "unreachable"}
    sync = AudienceSync.objects.get(audience__isnull=True, account=mp)
    assert SyncBatch.objects.filter(sync=sync).count() == 1
    assert syncs.run_due(now=T0) == {BatchState.DONE: 1}
    assert fake.tags[int(AudienceSync.objects.get(pk=sync.pk).platform_tag_id)] == {
        openid(i) for i in range(1, 6)
    }


def test_a_batch_rolled_back_queues_no_tagging(world, wechat_platform, sleeps, monkeypatch):
    from django.db import IntegrityError

    FakeWeChat(wechat_platform)
    people(world.own_brand, [1, 2], "wechat_openid", openid, app="wx-app")
    mp = account(world.own_brand, "wechat_mp")
    journey = make_journey(
        world.own_brand, chain(entry(), ("sy", "sync_tag", {"account": mp.pk, "tag_name": "推荐转化"}))
    )
    enter(journey, [1, 2])

    def collide(*args, **kwargs):  # another worker recorded these steps first
        raise IntegrityError("duplicate step")

    monkeypatch.setattr(InstanceStep.objects, "bulk_create", collide)
    assert runner.tick(now=T0) == 0
    assert not SyncBatch.objects.exists() and not InstanceStep.objects.exists()
