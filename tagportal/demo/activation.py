"""Demo channel accounts and one past send per account kind that reaches the demo people,
so the channel pages, the delivery funnel and an audience's 触达 section show something.

The accounts hold placeholder secrets: the real platforms are not reachable from a demo,
so a connection test answers the platform's refusal and a new send ends in the dead
letters after its retries. The past sends are written as their outcome (sent, delivered,
read, clicked, failed) at the time of the bootstrap, not sent.
"""

from __future__ import annotations

import datetime as dt
import random

from django.contrib.auth import get_user_model
from django.utils import timezone

from tagportal.activation import deliveries
from tagportal.activation.models import ChannelAccount, Delivery, DeliveryState, SendStatus
from tagportal.activation.recipients import recipients
from tagportal.audiences import services as audience_services
from tagportal.audiences.models import Audience
from tagportal.catalog.models import Brand
from tagportal.profiles.generator import MINI_APP
from tagportal.usage.choices import UsageKind

#: (kind, name, settings, secrets) of the demo brand's accounts.
ACCOUNTS = [
    ("wecom", "瑞颜企业微信", {"corpid": "ww_demo_ruiyan", "agentid": 1000002}, {"corpsecret": "demo"}),
    ("miniprogram", "瑞颜小程序", {"appid": MINI_APP}, {"appsecret": "demo"}),
    (
        "sms_aliyun",
        "瑞颜短信（阿里云）",
        {"sign_name": "瑞颜医美"},
        {"access_key_id": "demo", "access_key_secret": "demo"},
    ),
    (
        "webhook",
        "瑞颜 CRM 回调",
        {"url": "https://crm.example.com/hooks/tagportal"},
        {"signing_secret": "demo"},
    ),
]

#: (account name, audience name, content, outcome shares) of the past sends.
SENDS = [
    (
        "瑞颜企业微信",
        "重要客户企微召回",
        {"sender": "zhangmin", "text": "{{tag:yimei_rfm_rfm_segment}}的您好，本周到院护理享会员专属礼遇。"},
        {"delivered": 0.78, "sent": 0.1, "failed": 0.12},
    ),
    (
        "瑞颜 CRM 回调",
        "大单客户企微触达",
        {"text": "高客单客户回访"},
        {"clicked": 0.18, "read": 0.34, "delivered": 0.4, "dead": 0.08},
    ),
]


def load_demo_channels(brand_code: str = "ruiyan", seed: int = 1) -> dict:
    """The accounts and the past sends (once: a brand that has accounts is left alone)."""
    brand = Brand.objects.filter(code=brand_code).first()
    if brand is None or ChannelAccount.objects.filter(brand=brand).exists():
        return {"accounts": 0, "deliveries": 0}
    operator = get_user_model().objects.filter(username="operator").first()
    accounts = {}
    for kind, name, settings, secrets in ACCOUNTS:
        account = ChannelAccount(brand=brand, kind=kind, name=name, settings=settings, created_by=operator)
        account.merge_secrets(secrets)
        account.full_clean()
        account.save()
        accounts[name] = account
    rng = random.Random(seed)
    at = timezone.now()
    made = 0
    for account_name, audience_name, content, shares in SENDS:
        audience = Audience.objects.filter(brand=brand, name=audience_name).first()
        if audience is None:
            continue
        account = accounts[account_name]
        people = list(recipients(account, audience_services.members(audience)))
        send = deliveries.create_send(
            account, content, people, user=operator, now=at, kick=False, audience=audience
        )
        send.__class__.objects.filter(pk=send.pk).update(created=at, status=SendStatus.DONE)
        made += _outcomes(send, shares, rng, at)
        audience_services.record_use(audience, operator, UsageKind.ACTIVATION)
    return {"accounts": len(accounts), "deliveries": made}


def _outcomes(send, shares: dict, rng: random.Random, at: dt.datetime) -> int:
    """Give the send's deliveries the outcomes in ``shares`` (their times: ``at``)."""
    states, weights = list(shares), list(shares.values())
    rows = list(send.deliveries.all())
    for row in rows:
        state = rng.choices(states, weights)[0]
        sent_at = at
        row.state, row.attempts, row.created = state, 1, at
        row.sent_at = None if state in ("failed", "dead") else sent_at
        row.provider_id = "" if row.sent_at is None else f"demo-{row.pk}"
        later = at
        row.delivered_at = later if state in ("delivered", "read", "clicked") else None
        row.read_at = later if state in ("read", "clicked") else None
        row.clicked_at = later if state == "clicked" else None
        if state == DeliveryState.FAILED:
            row.attempts, row.last_error_code, row.last_error = 1, "84061", "not external contact"
        elif state == DeliveryState.DEAD:
            row.attempts, row.last_error_code, row.last_error = 6, "connection", "connection refused"
    Delivery.objects.bulk_update(
        rows,
        [
            "state",
            "attempts",
            "created",
            "sent_at",
            "provider_id",
            "delivered_at",
            "read_at",
            "clicked_at",
            "last_error_code",
            "last_error",
        ],
        batch_size=500,
    )
    return len(rows)
