"""The inbox every app notifies through: messages about any object, e-mail after the
commit, and messages that go with the object they are about."""

from __future__ import annotations

import pytest
from django.core import mail

from tagportal.governance import services as gov
from tagportal.notifications import services as notifications
from tagportal.notifications.models import Notification

from ..factories import UserFactory
from ..governance.conftest import update_spec


@pytest.fixture
def people(db):
    return UserFactory(username="ann", email="ann@example.com"), UserFactory(username="bo", email="")


def test_a_message_about_any_object_reaches_each_user_once(people, world, django_capture_on_commit_callbacks):
    ann, bo = people
    with django_capture_on_commit_callbacks(execute=True):
        notes = notifications.notify(
            [ann, bo, ann, None], "标签已更新", "到店次数", topic=world.own_tag, url="/x/"
        )
    assert sorted(n.recipient.username for n in notes) == ["ann", "bo"]
    stored = Notification.objects.get(recipient=ann)
    assert stored.topic == world.own_tag and stored.url == "/x/" and stored.read_at is None
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]  # bo has no address
    assert "到店次数" in mail.outbox[0].body and mail.outbox[0].body.endswith("/x/")


def test_no_mail_when_the_transaction_does_not_commit(people, django_capture_on_commit_callbacks):
    ann, _bo = people
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notifications.notify([ann], "主题", "正文")
    assert len(callbacks) == 1 and mail.outbox == []
    assert Notification.objects.get(recipient=ann).topic is None


def test_inbox_counts_and_marks_only_the_users_own(people):
    ann, bo = people
    notifications.notify([ann, bo], "一", "")
    notifications.notify([ann], "二", "")
    assert notifications.unread_count(ann) == 2 and notifications.unread_count(bo) == 1
    first = notifications.inbox_of(ann).order_by("pk").first()
    assert notifications.mark_read(bo, [first.pk]) == 0  # not bo's
    assert notifications.mark_read(ann, [first.pk]) == 1
    assert notifications.unread_count(ann) == 1 and notifications.unread_count(bo) == 1


def test_messages_about_a_change_request_are_found_by_it_and_go_with_it(gw):
    cr = gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True)
    about = Notification.objects.filter(change_request=cr)
    assert about.exists() and {n.recipient for n in about} >= {gw.steward}
    other = notifications.notify([gw.steward], "无关", "")[0]
    cr.comments.all().delete()
    cr.audit_events.all().delete()
    cr.delete()
    assert not Notification.objects.filter(topic_id=cr.pk, topic_type__model="changerequest").exists()
    assert Notification.objects.filter(pk=other.pk).exists()
