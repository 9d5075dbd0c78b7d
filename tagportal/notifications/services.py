"""Telling people: an inbox message for each user and an e-mail to those with an address.

Every app notifies through :func:`notify`; the inbox pages and API read
:class:`~.models.Notification` rows of the user."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from .models import Notification

log = logging.getLogger(__name__)


def notify(users, subject: str, body: str, topic=None, url: str = "") -> list[Notification]:
    """An inbox message about ``topic`` (any model instance, or none) for each user,
    linking to ``url``, and an e-mail to those with an address once the transaction
    commits (mail trouble never undoes the decision that caused it)."""
    topic_type = ContentType.objects.get_for_model(topic) if topic is not None else None
    topic_id = topic.pk if topic is not None else None
    notes = [
        Notification(
            recipient=user,
            topic_type=topic_type,
            topic_id=topic_id,
            subject=subject[:200],
            body=body,
            url=url,
        )
        for user in {u.pk: u for u in users if u is not None}.values()
    ]
    Notification.objects.bulk_create(notes)
    recipients = [n.recipient.email for n in notes if n.recipient.email]
    if recipients:
        link = f"{settings.TAGPORTAL_BASE_URL.rstrip('/')}{url}" if url else ""

        def send():
            try:
                send_mail(subject, f"{body}\n\n{link}".strip(), None, recipients)
            except Exception:  # mail trouble must not undo a decision
                log.exception("could not send the notification e-mail %r", subject)

        transaction.on_commit(send)
    return notes


def inbox_of(user):
    """The user's messages."""
    return Notification.objects.filter(recipient=user)


def unread_count(user) -> int:
    return inbox_of(user).filter(read_at__isnull=True).count()


def mark_read(user, ids=None) -> int:
    query = inbox_of(user).filter(read_at__isnull=True)
    if ids is not None:
        query = query.filter(pk__in=ids)
    return query.update(read_at=timezone.now())
