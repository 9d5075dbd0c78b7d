"""Demo journeys, one or two per demo brand, created, submitted by a proposer, approved by
another person (a steward of the brand) and so live, as ``make run`` leaves them:

- 瑞颜医美 流失预警召回: 流失风险 = 高 → 导诊助理企微 1v1 私聊关怀 → 3 天内到院则打标
  召回成功; 未到院 → 短信 + 有赞优惠券（打有赞标签，由有赞按标签发券）→ 7 天内到院则打标
  召回成功, 否则退出.
- 花妍美妆 新客肌肤测试推荐: 完成肌肤测试 → 近30天新入会才继续 → 公众号模板消息推荐 →
  7 天内下单则打标 推荐转化.
- 花妍美妆 AIPL 兴趣转购买: AIPL = 兴趣 → 10% 对照组（不发送）→ 公众号模板消息 → 14 天内下单.
- 康源营养 益生菌交叉销售: 益生菌交叉销售潜客 → 短信 → 7 天内下单.
- 清泉饮品 新会员首单: 近30天新入会 → 等 1 天 → 短信首单券 → 7 天内下单.

Project level (it uses the catalog, activation and journeys apps). Idempotent: a brand's
journey of the same name is left alone; the accounts it needs are created once.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from tagportal.activation.models import ChannelAccount
from tagportal.catalog.models import Brand, Tag
from tagportal.journeys import lifecycle
from tagportal.journeys.models import Journey
from tagportal.profiles.generator import MINI_APP

#: brand code → (kind, name, settings, secrets) of the accounts the journeys need.
ACCOUNTS = {
    "ruiyan": [
        (
            "youzan",
            "瑞颜有赞商城",
            {"client_id": "yz_demo_ruiyan", "grant_id": "91000001"},
            {"client_secret": "demo"},
        ),
    ],
    "huayan": [
        (
            "wechat_mp",
            "花妍公众号",
            {"appid": MINI_APP},
            {"appsecret": "demo", "callback_token": "demo", "encoding_aes_key": "demo"},
        ),
    ],
    "kangyuan": [
        (
            "sms_aliyun",
            "康源短信（阿里云）",
            {"sign_name": "康源营养"},
            {"access_key_id": "demo", "access_key_secret": "demo"},
        ),
    ],
    "qingquan": [
        (
            "sms_aliyun",
            "清泉短信（阿里云）",
            {"sign_name": "清泉饮品"},
            {"access_key_id": "demo", "access_key_secret": "demo"},
        ),
    ],
}
#: The member of 瑞颜's WeCom who chats with (and tags) the customers: 导诊助理.
GUIDE = "zhangmin"
DAY = 24 * 60


def _tag(brand: Brand, name: str) -> str:
    """The code of the brand's pack tag ``name`` (codes are ``<line>_<domain>_<name>``)."""
    tag = Tag.objects.filter(brand=brand, code__endswith=f"_{name}").order_by("pk").first()
    if tag is None:
        raise LookupError(f"{brand.code} has no tag {name}")
    return tag.code


def _account(brand: Brand, name: str) -> int:
    return ChannelAccount.objects.get(brand=brand, name=name).pk


def _graph(nodes: list[tuple], edges: list[tuple], goal: dict | None) -> dict:
    return {
        "nodes": [
            {
                "id": nid,
                "type": kind,
                "label": label,
                "x": 40 + 180 * (i % 4),  # four a row: the canvas at 1280 px shows them all
                "y": 80 + 120 * (i // 4),
                "config": config,
            }
            for i, (nid, kind, label, config) in enumerate(nodes)
        ],
        "edges": [{"from": a, "to": b, "port": port} for a, port, b in edges],
        "goal": goal,
    }


def recall_chain(brand: Brand) -> dict:
    """医美: 流失预警高 → 企微 1v1 关怀 → 3 天未到院 → 短信 + 有赞券 → 7 天内到院则打标 召回成功."""
    recalled = _tag(brand, "recall_success")
    visit = "store_visit"
    return _graph(
        [
            (
                "in",
                "entry",
                "流失风险：高",
                {
                    "trigger": "tag",
                    "tag": _tag(brand, "churn_risk"),
                    "value": "high",
                    "reentry": "after_days",
                    "reentry_days": 90,
                },
            ),
            (
                "care",
                "send",
                "导诊助理企微 1v1 关怀",
                {
                    "account": _account(brand, "瑞颜企业微信"),
                    "content": {
                        "sender": GUIDE,
                        "text": "好久不见，最近皮肤状态怎么样？本月到院可免费做一次皮肤检测。",
                    },
                },
            ),
            ("v3", "wait", "3 天内到院？", {"mode": "event", "event": visit, "within_minutes": 3 * DAY}),
            ("t1", "set_tag", "打标 召回成功", {"tag": recalled, "value": "true"}),
            (
                "sms",
                "send",
                "短信召回",
                {
                    "account": _account(brand, "瑞颜短信（阿里云）"),
                    "content": {"template_code": "SMS_RECALL", "params": {"coupon": "到院礼券 200 元"}},
                },
            ),
            (
                "coupon",
                "sync_tag",
                "有赞优惠券（打标签发券）",
                {
                    "account": _account(brand, "瑞颜有赞商城"),
                    "tag_name": "召回礼券",
                },
            ),
            ("v7", "wait", "7 天内到院？", {"mode": "event", "event": visit, "within_minutes": 7 * DAY}),
            ("t2", "set_tag", "打标 召回成功", {"tag": recalled, "value": "true"}),
            ("out", "exit", "未召回", {}),
        ],
        [
            ("in", "next", "care"),
            ("care", "next", "v3"),
            ("v3", "happened", "t1"),
            ("v3", "timeout", "sms"),
            ("sms", "next", "coupon"),
            ("coupon", "next", "v7"),
            ("v7", "happened", "t2"),
            ("v7", "timeout", "out"),
        ],
        {"kind": "event", "event": visit, "window_days": 10, "from": "entry", "ends_journey": False},
    )


def skin_test_chain(brand: Brand) -> dict:
    """美妆: 新用户 + 完成肌肤测试 → 公众号模板消息推荐 → 7 天内购买则打标 推荐转化."""
    return _graph(
        [
            (
                "in",
                "entry",
                "完成肌肤测试",
                {"trigger": "tag", "tag": _tag(brand, "skin_test_done"), "value": "true", "reentry": "never"},
            ),
            (
                "new",
                "branch",
                "近30天新入会？",
                {"tag": _tag(brand, "new_member_30d"), "cases": [{"key": "yes", "values": ["true"]}]},
            ),
            (
                "rec",
                "send",
                "公众号模板消息推荐",
                {
                    "account": _account(brand, "花妍公众号"),
                    "content": {
                        "template_id": "TPL_SKIN_RECOMMEND",
                        "data": {
                            "first": "你的肌肤测试结果已出",
                            "keyword1": "专属护肤方案",
                            "remark": "点击查看推荐",
                        },
                        "url": "https://huayan.example.com/skin",
                    },
                },
            ),
            ("buy", "wait", "7 天内购买？", {"mode": "event", "event": "order", "within_minutes": 7 * DAY}),
            ("tag", "set_tag", "打标 推荐转化", {"tag": _tag(brand, "recommend_converted"), "value": "true"}),
            ("out", "exit", "未购买", {}),
        ],
        [
            ("in", "next", "new"),
            ("new", "yes", "rec"),
            ("rec", "next", "buy"),
            ("buy", "happened", "tag"),
            ("buy", "timeout", "out"),
        ],
        {"kind": "order", "window_days": 7, "from": "send", "ends_journey": False},
    )


def aipl_chain(brand: Brand) -> dict:
    """AIPL 兴趣 → 购买, 10% 对照组不发送（衡量增量）."""
    return _graph(
        [
            (
                "in",
                "entry",
                "AIPL：兴趣",
                {
                    "trigger": "tag",
                    "tag": _tag(brand, "aipl_stage"),
                    "value": "interest",
                    "reentry": "after_days",
                    "reentry_days": 30,
                },
            ),
            ("ab", "holdout", "10% 对照组", {"holdout_percent": 10}),
            (
                "push",
                "send",
                "公众号新品试用",
                {
                    "account": _account(brand, "花妍公众号"),
                    "content": {
                        "template_id": "TPL_NEW_TRIAL",
                        "data": {"first": "新品试用装已为你预留", "remark": "下单即送"},
                    },
                },
            ),
            ("buy", "wait", "14 天内购买？", {"mode": "event", "event": "order", "within_minutes": 14 * DAY}),
            ("out", "exit", "结束", {}),
        ],
        [
            ("in", "next", "ab"),
            ("ab", "treatment", "push"),
            ("push", "next", "buy"),
            ("buy", "timeout", "out"),
        ],
        {"kind": "order", "window_days": 14, "from": "entry", "ends_journey": True},
    )


def health_chain(brand: Brand) -> dict:
    """大健康: 益生菌交叉销售潜客 → 短信 → 7 天内购买."""
    return _graph(
        [
            (
                "in",
                "entry",
                "益生菌交叉销售潜客",
                {
                    "trigger": "tag",
                    "tag": _tag(brand, "probiotic_cross_sell"),
                    "value": "true",
                    "reentry": "after_days",
                    "reentry_days": 60,
                },
            ),
            (
                "sms",
                "send",
                "短信推荐益生菌",
                {
                    "account": _account(brand, "康源短信（阿里云）"),
                    "content": {"template_code": "SMS_PROBIOTIC", "params": {"product": "益生菌"}},
                },
            ),
            ("buy", "wait", "7 天内购买？", {"mode": "event", "event": "order", "within_minutes": 7 * DAY}),
        ],
        [("in", "next", "sms"), ("sms", "next", "buy")],
        {"kind": "order", "window_days": 7, "from": "send", "ends_journey": True},
    )


def food_chain(brand: Brand) -> dict:
    """食品饮料: 近30天新入会 → 等 1 天 → 短信首单券 → 7 天内购买."""
    return _graph(
        [
            (
                "in",
                "entry",
                "近30天新入会",
                {"trigger": "tag", "tag": _tag(brand, "new_member_30d"), "value": "true", "reentry": "never"},
            ),
            ("w", "wait", "等 1 天", {"mode": "duration", "minutes": DAY}),
            (
                "sms",
                "send",
                "短信首单券",
                {
                    "account": _account(brand, "清泉短信（阿里云）"),
                    "content": {"template_code": "SMS_FIRST_ORDER", "params": {"coupon": "首单立减 10 元"}},
                },
            ),
            ("buy", "wait", "7 天内购买？", {"mode": "event", "event": "order", "within_minutes": 7 * DAY}),
        ],
        [("in", "next", "w"), ("w", "next", "sms"), ("sms", "next", "buy")],
        {"kind": "order", "window_days": 7, "from": "send", "ends_journey": True},
    )


#: (brand code, journey name, description, graph builder, proposer, steward).
JOURNEYS = [
    ("ruiyan", "流失预警召回", "流失预警高的客户：企微关怀，3 天未到院再发短信和有赞礼券，7 天内到院打标召回成功。",
     recall_chain, "operator", "steward"),
    ("huayan", "新客肌肤测试推荐", "新入会并完成肌肤测试的客户：公众号推荐护肤方案，7 天内购买打标推荐转化。",
     skin_test_chain, "admin", "steward"),
    ("huayan", "AIPL 兴趣转购买", "AIPL 处于兴趣阶段的客户：公众号新品试用，留 10% 对照组衡量增量。",
     aipl_chain, "admin", "steward"),
    ("kangyuan", "益生菌交叉销售", "益生菌交叉销售潜客：短信推荐，7 天内购买计为转化。",
     health_chain, "admin", "steward2"),
    ("qingquan", "新会员首单", "近30天新入会的会员：入会次日短信首单券，7 天内购买计为转化。",
     food_chain, "admin", "steward2"),
]  # fmt: skip


def ensure_accounts(brand: Brand, operator=None) -> None:
    for kind, name, settings, secrets in ACCOUNTS.get(brand.code, []):
        if ChannelAccount.objects.filter(brand=brand, name=name).exists():
            continue
        account = ChannelAccount(brand=brand, kind=kind, name=name, settings=settings, created_by=operator)
        account.merge_secrets(secrets)
        account.full_clean()
        account.save()


def start(brand: Brand, name: str, description: str, graph: dict, proposer, steward) -> Journey:
    """Create, submit and approve (four eyes) one journey: it is live when this returns."""
    journey = lifecycle.create(proposer, brand, name, graph, description)
    version = lifecycle.submit(proposer, journey)
    lifecycle.approve(steward, version, note="演示旅程")
    journey.refresh_from_db()
    return journey


def load_demo_journeys() -> list[Journey]:
    """The demo journeys (those missing), live; answers the ones made now."""
    users = {
        u.username: u
        for u in get_user_model().objects.filter(username__in=["admin", "operator", "steward", "steward2"])
    }
    made = []
    for code, name, description, build, proposer, steward in JOURNEYS:
        brand = Brand.objects.filter(code=code).first()
        if brand is None or proposer not in users or steward not in users:
            continue
        if Journey.objects.filter(brand=brand, name=name).exists():
            continue
        with transaction.atomic():
            ensure_accounts(brand, users.get("operator"))
            made.append(start(brand, name, description, build(brand), users[proposer], users[steward]))
    return made
