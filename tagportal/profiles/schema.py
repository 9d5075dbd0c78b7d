"""The profile data model: profile attributes, event and order fields, event types
and channels, with their types. It is the vocabulary rules may use
(:data:`VOCABULARY`, registered with :mod:`tagportal.rules` when the profiles app
is ready). Brands extend event types with the ``TAGPORTAL_EXTRA_EVENT_TYPES``
setting."""

from __future__ import annotations

from django.conf import settings

from tagportal.rules.vocabulary import ANY, DATE, NUMBER, STRING, Vocabulary

__all__ = ["ANY", "DATE", "NUMBER", "STRING"]

#: Attributes of a person's profile (Customer), with their types.
PROFILE_ATTRIBUTES: dict[str, str] = {
    "gender": STRING,  # female / male / unknown
    "age": NUMBER,
    "birth_month": NUMBER,
    "province": STRING,
    "city": STRING,
    "member_level": STRING,
    "points": NUMBER,
    "registered_days": NUMBER,  # days since registration, Beijing days
    "source_channel": STRING,
    "skin_type": STRING,
    "wecom_added": STRING,  # "yes" / "no"
}

EVENT_FIELDS: dict[str, str] = {
    "type": STRING,
    "channel": STRING,
    "store": STRING,
    "value": NUMBER,  # a number the event carries (duration, score, ...)
}

ORDER_FIELDS: dict[str, str] = {
    "amount": NUMBER,
    "quantity": NUMBER,
    "channel": STRING,
    "store": STRING,
    "category": STRING,  # product line
    "sku": STRING,
    "discount": NUMBER,
}

SOURCES = {"events": EVENT_FIELDS, "orders": ORDER_FIELDS}

CHANNELS = (
    "wechat_oa", "wecom", "miniprogram", "wechat_channels", "douyin", "xiaohongshu",
    "jd", "tmall", "store", "crm", "app", "web", "sms", "call_center",
)  # fmt: skip

EVENT_TYPES = (
    "page_view", "product_view", "search", "add_to_cart", "purchase", "refund",
    "store_visit", "consultation", "appointment", "treatment", "follow_up",
    "coupon_received", "coupon_used", "sample_request", "check_in", "sign_in",
    "wecom_add", "wecom_chat", "wecom_delete", "live_view", "content_view",
    "content_like", "content_share", "review", "survey", "subscribe", "unsubscribe",
    "member_join", "points_redeem", "complaint",
    # written by activation when a message moves (the feedback of journeys and sends)
    "message_sent", "message_delivered", "message_read", "message_clicked",
)  # fmt: skip


#: Events that record what the brand did to a person (a message sent, and delivered), not
#: what the person did: models of a person's activity leave them out (a read or a click is
#: the person's own doing, and counts).
OUTBOUND_EVENT_TYPES = ("message_sent", "message_delivered")


def event_types() -> set[str]:
    return set(EVENT_TYPES) | set(getattr(settings, "TAGPORTAL_EXTRA_EVENT_TYPES", ()))


VOCABULARY = Vocabulary(
    attributes=PROFILE_ATTRIBUTES, sources=SOURCES, channels=CHANNELS, event_types=event_types
)
field_type = VOCABULARY.field_type
