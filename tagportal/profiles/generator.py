"""Demo data: people, identities, events and orders that look like a brand's.

:func:`generate` is deterministic by seed (and end moment), fully vectorised (numpy
and pyarrow, no loop over people or events) and shaped for the industry template
packs (``fixtures/templates/*.yaml``): the event types, channels, ``properties.<key>``
values and order categories the templates read, so that their tags come out
non-empty: skin types, store visits, consultations and treatments with
``properties.project``, purchases of the template's product lines, WeCom adds and
chats, coupons, mini-program views, Douyin / Tmall / JD orders and campaign orders.

The frames are the engine's input frames (``oneid`` + columns of
:mod:`tagportal.profiles.schema`), plus the ``identities`` of each person. Text
columns are ``category`` dtype (compact: 10,000,000 events take about 0.5 GB).

:func:`load_demo` writes them into a brand through :mod:`.services`, the way an
import would (its people resolved by OneID); running it again adds nothing.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.db import transaction
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand
from tagportal.core.days import BEIJING_ZONE
from tagportal.profiles.schema import CHANNELS, PROFILE_ATTRIBUTES

from . import services
from .choices import IdentityType as T
from .models import Event, Order
from .services import Progress

DAY = 86_400
INDUSTRIES = ("medical_aesthetics", "beauty", "health_nutrition", "food_beverage")
MINI_APP = "wx_demo_miniprogram"
#: Demo brands (fixtures/demo.yaml) and their industry.
DEMO_BRANDS = {"ruiyan": "medical_aesthetics", "kangyuan": "health_nutrition", "huayan": "beauty", "qingquan": "food_beverage"}  # fmt: skip

# (province, city, weight): tier-1, new tier-1, tier-2 and smaller cities.
PLACES = [
    ("上海", "上海", 9), ("北京", "北京", 8), ("广东", "广州", 7), ("广东", "深圳", 7),
    ("四川", "成都", 5), ("重庆", "重庆", 4), ("浙江", "杭州", 5), ("湖北", "武汉", 4), ("江苏", "苏州", 4),
    ("陕西", "西安", 3), ("江苏", "南京", 4), ("湖南", "长沙", 3), ("天津", "天津", 3), ("河南", "郑州", 3),
    ("广东", "东莞", 2), ("江苏", "无锡", 2), ("浙江", "宁波", 2), ("山东", "青岛", 2), ("安徽", "合肥", 2),
    ("广东", "佛山", 2), ("辽宁", "沈阳", 2), ("云南", "昆明", 2), ("山东", "济南", 2), ("福建", "厦门", 2),
    ("福建", "福州", 2), ("浙江", "温州", 1), ("黑龙江", "哈尔滨", 1), ("河北", "石家庄", 1), ("辽宁", "大连", 1),
    ("广西", "南宁", 1), ("吉林", "长春", 1), ("江西", "南昌", 1), ("山西", "太原", 1), ("贵州", "贵阳", 1),
    ("甘肃", "兰州", 1), ("新疆", "乌鲁木齐", 1), ("内蒙古", "呼和浩特", 1), ("海南", "海口", 1), ("宁夏", "银川", 0.5),
    ("青海", "西宁", 0.5), ("西藏", "拉萨", 0.3), ("河南", "洛阳", 1), ("湖南", "岳阳", 0.5), ("江西", "赣州", 0.5),
    ("广东", "湛江", 0.5), ("四川", "绵阳", 0.5), ("香港", "香港", 0.3),
]  # fmt: skip
STORE_CITIES = ["上海", "北京", "广州", "深圳", "成都", "杭州", "武汉", "南京", "重庆", "西安"]
SKIN_TYPES = {"油性": 22, "干性": 20, "混合性": 30, "中性": 13, "敏感性": 15}
SOURCE_CHANNELS = {
    "miniprogram": 25, "wechat_oa": 10, "wecom": 10, "store": 20, "douyin": 10, "xiaohongshu": 7, "tmall": 10,
    "jd": 5, "crm": 2, "app": 1,
}  # fmt: skip
HOURS = np.array(
    [1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 2, 3, 5, 7, 7, 6, 6, 7, 7, 7, 7, 8, 10, 12, 12, 9, 4], dtype=float
)

# Channels of each event type.
EVENT_CHANNELS: dict[str, dict[str, float]] = {
    "page_view": {"miniprogram": 60, "app": 20, "web": 10, "wechat_oa": 10},
    "product_view": {"miniprogram": 60, "app": 20, "web": 10, "wechat_oa": 10},
    "search": {"miniprogram": 70, "app": 20, "web": 10},
    "add_to_cart": {"miniprogram": 70, "app": 20, "web": 10},
    "content_view": {"douyin": 35, "xiaohongshu": 30, "wechat_channels": 20, "wechat_oa": 15},
    "content_like": {"douyin": 35, "xiaohongshu": 35, "wechat_channels": 20, "wechat_oa": 10},
    "content_share": {"wechat_oa": 30, "douyin": 25, "xiaohongshu": 25, "wechat_channels": 20},
    "live_view": {"douyin": 60, "wechat_channels": 30, "tmall": 10},
    "store_visit": {"store": 100},
    "treatment": {"store": 100},
    "consultation": {"store": 50, "wecom": 30, "miniprogram": 10, "call_center": 10},
    "appointment": {"miniprogram": 50, "wecom": 30, "call_center": 20},
    "follow_up": {"wecom": 60, "call_center": 30, "sms": 10},
    "survey": {"miniprogram": 70, "wechat_oa": 20, "wecom": 10},
    "sample_request": {"miniprogram": 70, "store": 30},
    "coupon_received": {"miniprogram": 50, "wecom": 30, "sms": 10, "wechat_oa": 10},
    "coupon_used": {"miniprogram": 50, "store": 40, "tmall": 10},
    "wecom_add": {"wecom": 100},
    "wecom_chat": {"wecom": 100},
    "wecom_delete": {"wecom": 100},
    "check_in": {"miniprogram": 90, "app": 10},
    "sign_in": {"miniprogram": 90, "app": 10},
    "points_redeem": {"miniprogram": 80, "store": 20},
    "member_join": {"miniprogram": 60, "store": 40},
    "review": {"tmall": 40, "jd": 30, "miniprogram": 20, "xiaohongshu": 10},
    "complaint": {"call_center": 50, "wecom": 30, "tmall": 10, "jd": 10},
    "refund": {"miniprogram": 40, "tmall": 30, "jd": 20, "store": 10},
}
WECOM_TYPES = ("wecom_chat", "wecom_delete")
ONLINE_TYPES = (
    "page_view",
    "product_view",
    "content_view",
    "content_like",
    "search",
    "add_to_cart",
    "live_view",
)
STORE_TYPES = ("store_visit", "treatment", "consultation", "appointment", "follow_up")

# Per industry: the vocabulary the template packs read.
_CONCERNS_SKIN = {"痘痘": 15, "闭口": 5, "出油": 10, "干燥": 12, "缺水": 8, "暗沉": 10, "色斑": 8, "细纹": 8,
                  "松弛": 6, "泛红": 6, "敏感": 8, "毛孔粗大": 8, "黑头": 4}  # fmt: skip
INDUSTRY: dict[str, dict] = {
    "medical_aesthetics": {
        "female": 0.85, "age": (33, 8), "skin": True, "wecom": 0.55,
        "member_levels": {"普卡": 50, "银卡": 25, "金卡": 15, "铂金卡": 7, "黑钻卡": 3},
        "store": "{city}旗舰院",
        "events": {
            "page_view": 16, "product_view": 10, "search": 3, "add_to_cart": 2, "content_view": 8, "content_like": 3,
            "content_share": 1, "live_view": 1, "store_visit": 9, "consultation": 8, "appointment": 6, "treatment": 7,
            "follow_up": 4, "survey": 2, "coupon_received": 4, "coupon_used": 2, "wecom_add": 1, "wecom_chat": 9,
            "wecom_delete": 0.4, "member_join": 0.5, "points_redeem": 0.5, "review": 1, "complaint": 0.3,
            "refund": 0.3,
        },
        "event_properties": {
            "treatment": {("project", "project_type"): {
                ("热玛吉", "光电"): 8, ("超声炮", "光电"): 7, ("热拉提", "光电"): 4, ("黄金微针", "光电"): 4,
                ("Fotona4D", "光电"): 3, ("光子嫩肤", "光电"): 10, ("皮秒", "光电"): 6, ("玻尿酸", "注射"): 8,
                ("玻尿酸填充", "注射"): 3, ("肉毒素", "注射"): 6, ("瘦脸针", "注射"): 5, ("除皱针", "注射"): 3,
                ("水光针", "注射"): 7, ("小气泡", "皮肤管理"): 9, ("刷酸", "皮肤管理"): 5, ("清洁补水", "皮肤管理"): 8,
                ("双眼皮", "手术"): 1, ("隆鼻", "手术"): 1,
            }},
            "consultation": {"concern": {"痘痘": 10, "痘印": 6, "色斑": 10, "黄褐斑": 4, "暗沉": 8, "皱纹": 8,
                                          "法令纹": 7, "松弛": 9, "毛孔粗大": 7, "泛红": 5, "敏感": 6, "双下巴": 5,
                                          "咬肌": 4}},
            "survey": {"concern": {"痘痘": 10, "色斑": 10, "暗沉": 8, "细纹": 8, "松弛": 9, "毛孔": 7, "红血丝": 5}},
            "complaint": {"reason": {"效果不满意": 40, "服务态度": 30, "价格": 20, "过敏": 10}},
            "content_view": {"topic": {"抗衰": 30, "祛斑": 25, "补水": 25, "轮廓": 20}},
        },
        "follow_up_score": True,
        "categories": {"光电": (25, 6800), "注射": (20, 3800), "皮肤管理": (20, 680), "护肤品": (15, 380),
                       "储值卡": (10, 10000), "疗程卡": (8, 5200), "手术": (2, 18000)},
        "order_channels": {"store": 60, "miniprogram": 18, "wecom": 8, "douyin": 7, "tmall": 5, "jd": 2,
                           "wechat_channels": 2, "xiaohongshu": 1},
        "quantity": 0.1,
        "order_properties": {},
        "campaigns": {"女神节": (3, 1, 8), "520": (5, 15, 20), "七夕": (8, 1, 10), "周年庆": (9, 15, 30),
                      "双11": (11, 1, 11), "双12": (12, 1, 12)},
    },
    "beauty": {
        "female": 0.8, "age": (29, 8), "skin": True, "wecom": 0.4,
        "member_levels": {"普通会员": 55, "银卡会员": 25, "金卡会员": 15, "黑金卡会员": 5},
        "store": "{city}专柜",
        "events": {
            "page_view": 18, "product_view": 14, "search": 4, "add_to_cart": 5, "content_view": 9, "content_like": 4,
            "content_share": 1.5, "live_view": 3, "store_visit": 6, "consultation": 5, "survey": 2,
            "sample_request": 2, "coupon_received": 5, "coupon_used": 3, "wecom_add": 1, "wecom_chat": 6,
            "wecom_delete": 0.4, "member_join": 0.5, "points_redeem": 0.5, "review": 2, "complaint": 0.3,
            "refund": 0.5,
        },
        "event_properties": {
            "consultation": {"service": {"试妆": 40, "皮肤检测": 35, "面部护理": 25}, "concern": _CONCERNS_SKIN},
            "survey": {"survey": {"肌肤测试": 70, "满意度调研": 30}, "concern": _CONCERNS_SKIN},
            "complaint": {"reason": {"过敏": 30, "物流": 40, "假货质疑": 15, "包装破损": 15}},
            "content_view": {"topic": {"护肤教程": 40, "彩妆教程": 35, "新品": 25}},
        },
        "categories": {"护肤": (40, 420), "彩妆": (25, 260), "香水": (10, 680), "身体护理": (10, 150),
                       "美容仪器": (5, 1800), "男士护理": (5, 200)},
        "order_channels": {"tmall": 28, "store": 20, "miniprogram": 15, "douyin": 15, "jd": 10,
                           "wechat_channels": 6, "xiaohongshu": 6, "wecom": 3},
        "quantity": 0.4,
        "order_properties": {
            "series": ({"修护": 25, "美白": 20, "抗老": 20, "控油": 15, "保湿": 20}, ("护肤",)),
            "is_new": 0.2, "is_gift": 0.1, "is_live": 0.15,
        },
        "campaigns": {"年货节": (1, 10, 25), "女神节": (3, 1, 8), "520": (5, 15, 20), "618": (6, 1, 18),
                      "七夕": (8, 1, 10), "双11": (11, 1, 11), "双12": (12, 1, 12)},
    },
    "health_nutrition": {
        "female": 0.6, "age": (42, 13), "skin": False, "wecom": 0.45,
        "member_levels": {"普通会员": 55, "银卡会员": 25, "金卡会员": 15, "钻石会员": 5},
        "store": "{city}体验店",
        "events": {
            "page_view": 16, "product_view": 12, "search": 3, "add_to_cart": 4, "content_view": 10, "content_like": 3,
            "content_share": 1.5, "live_view": 3, "check_in": 12, "survey": 3, "consultation": 3, "store_visit": 2,
            "sample_request": 1, "coupon_received": 5, "coupon_used": 3, "wecom_add": 1, "wecom_chat": 7,
            "wecom_delete": 0.4, "member_join": 0.5, "points_redeem": 1, "review": 1.5, "complaint": 0.3,
            "refund": 0.4,
        },
        "event_properties": {
            "survey": {"survey": {"健康测评": 75, "满意度调研": 25},
                       "concern": {"免疫力": 15, "睡眠": 14, "肠道": 12, "关节": 10, "血脂": 8, "减重": 10,
                                   "护眼": 8, "美容养颜": 10, "控糖": 6, "熬夜": 7}},
            "consultation": {"concern": {"免疫力": 15, "失眠": 12, "便秘": 10, "骨质疏松": 10, "血压": 8,
                                         "体重管理": 10, "视疲劳": 8, "抗衰": 8, "护肝": 7}},
            "content_view": {"topic": {"营养科普": 30, "运动健身": 20, "减脂": 15, "睡眠": 10, "母婴": 10,
                                       "中医养生": 10, "银发健康": 5}},
            "content_like": {"topic": {"营养科普": 30, "运动": 25, "减肥": 20, "育儿": 15, "养生": 10}},
            "content_share": {"topic": {"营养知识": 40, "健身": 30, "中老年": 30}},
            "complaint": {"reason": {"物流": 45, "效果不满意": 30, "过敏": 10, "包装破损": 15}},
        },
        "categories": {"维生素矿物质": (25, 220), "蛋白营养": (12, 320), "益生菌": (15, 260), "鱼油": (10, 280),
                       "骨骼关节": (10, 360), "胶原蛋白": (8, 420), "草本滋补": (6, 480), "体重管理": (6, 300),
                       "孕产营养": (4, 380), "儿童营养": (4, 240)},
        "order_channels": {"tmall": 30, "jd": 20, "miniprogram": 20, "douyin": 12, "store": 10, "wecom": 8,
                           "wechat_channels": 2},
        "quantity": 0.6,
        "order_properties": {
            "purchase_type": ({"周期购": 25, "单次购买": 75}, None),
            "is_gift": 0.12,
        },
        "campaigns": {"年货节": (1, 10, 25), "女神节": (3, 1, 8), "母亲节": (5, 5, 12), "618": (6, 1, 18),
                      "重阳节": (10, 1, 11), "双11": (11, 1, 11)},
    },
    "food_beverage": {
        "female": 0.55, "age": (28, 9), "skin": False, "wecom": 0.35,
        "member_levels": {"普通会员": 60, "银卡会员": 22, "金卡会员": 13, "钻石会员": 5},
        "store": "{city}门店",
        "events": {
            "page_view": 14, "product_view": 12, "search": 3, "add_to_cart": 6, "content_view": 8, "content_like": 4,
            "content_share": 2, "live_view": 4, "sign_in": 14, "store_visit": 4, "coupon_received": 6,
            "coupon_used": 4, "wecom_add": 1, "wecom_chat": 7, "wecom_delete": 0.4, "member_join": 0.5,
            "points_redeem": 2, "review": 2, "complaint": 0.3, "refund": 0.4,
        },
        "event_properties": {
            "wecom_chat": {"chat_type": {"群聊": 65, "私聊": 35}},
            "complaint": {"reason": {"异物": 20, "变质": 20, "漏液": 20, "物流": 40}},
            "content_view": {"topic": {"新品": 40, "食谱": 35, "探店": 25}},
        },
        "categories": {"饮料": (30, 60), "乳制品": (20, 80), "咖啡茶饮": (15, 45), "休闲零食": (15, 50),
                       "坚果炒货": (8, 90), "方便速食": (6, 40), "酒水": (4, 150), "粮油调味": (2, 70)},
        "order_channels": {"miniprogram": 30, "tmall": 20, "jd": 15, "douyin": 15, "store": 15, "wechat_channels": 5,
                           "wecom": 3},
        "quantity": 1.5,
        "order_properties": {
            "flavor": ({"原味": 25, "香甜": 15, "香辣": 12, "酸甜": 10, "海盐": 10, "白桃": 10, "柠檬": 10, "荔枝": 8}, None),
            "sugar": ({"无糖": 30, "低糖": 25, "全糖": 45}, ("饮料", "乳制品", "咖啡茶饮")),
            "claim": ({"低脂": 25, "高蛋白": 25, "0添加": 30, "高纤维": 20}, ("乳制品", "休闲零食", "坚果炒货")),
            "pack": ({"整箱": 35, "单瓶": 65}, ("饮料", "乳制品")),
            "is_new": 0.15,
        },
        "campaigns": {"年货节": (1, 10, 25), "端午": (6, 1, 10), "618": (6, 11, 18), "中秋": (9, 1, 17),
                      "双11": (11, 1, 11)},
    },
}  # fmt: skip


def industry_for_brand(code: str) -> str:
    return DEMO_BRANDS.get(code, "beauty")


# ---------------------------------------------------------------------------
# helpers


def _weights(table: dict) -> tuple[list, np.ndarray]:
    keys = list(table)
    w = np.array([float(v[0] if isinstance(v, tuple) else v) for v in table.values()])
    return keys, w / w.sum()


def _pick(rng: np.random.Generator, table: dict, size: int) -> tuple[list, np.ndarray]:
    keys, p = _weights(table)
    return keys, rng.choice(len(keys), size=size, p=p).astype("int16")


def _categorical(codes: np.ndarray, categories: Sequence) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype("int16", copy=False), categories=list(categories))


def _bijection(rng: np.random.Generator, i: np.ndarray, space: int) -> np.ndarray:
    """Distinct pseudo-random numbers below ``space`` for distinct ``i`` (an affine map)."""
    while True:
        a = int(rng.integers(space // 3, space - 1)) | 1
        if a % 5 and np.gcd(a, space) == 1:
            break
    b = int(rng.integers(0, space))
    return (i.astype("int64") * a + b) % space


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


PHONE_PREFIXES = np.array(
    [
        *range(130, 140),
        *range(150, 154),
        *range(155, 160),
        166,
        *range(170, 179),
        *range(180, 190),
        191,
        198,
        199,
    ]
)


def _phones(rng: np.random.Generator, i: np.ndarray) -> pa.Array:
    prefix = PHONE_PREFIXES[rng.integers(0, len(PHONE_PREFIXES), size=len(i))]
    number = prefix.astype("int64") * 10**8 + _bijection(rng, i, 10**8)
    return pc.cast(pa.array(number), pa.string())


def _end_moment(end) -> pd.Timestamp:
    if end is None:
        return pd.Timestamp.now(tz="UTC").floor("h")
    if isinstance(end, dt.datetime | pd.Timestamp):
        stamp = pd.Timestamp(end)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    stamp = pd.Timestamp(end).tz_localize(BEIJING_ZONE) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    return stamp.tz_convert("UTC")


def _moment_ns(rng, end: pd.Timestamp, days_back: np.ndarray) -> np.ndarray:
    """Nanoseconds since the epoch, ``days_back`` Beijing days before ``end`` at a
    plausible hour, never after ``end``."""
    midnight = end.tz_convert(BEIJING_ZONE).normalize().tz_convert("UTC").value
    ns = rng.choice(24, size=len(days_back), p=HOURS / HOURS.sum()).astype("int64")
    ns *= 3600
    ns += rng.integers(0, 3600, size=len(days_back))
    ns -= days_back.astype("int64") * DAY
    ns *= 10**9
    ns += midnight
    ns[ns > end.value] -= DAY * 10**9
    return ns


def _utc(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"), copy=False)


# ---------------------------------------------------------------------------
# the generator


def generate(
    seed: int,
    people: int,
    events_per_person: float = 10,
    channels: Sequence[str] = CHANNELS,
    *,
    industry: str = "beauty",
    orders_per_person: float | None = None,
    end=None,
    start_oneid: int = 1,
    years: float = 2.0,
) -> dict[str, pd.DataFrame]:
    """Demo ``customers``, ``identities``, ``events`` and ``orders`` frames.

    Same ``seed`` and ``end``, same frames. ``events_per_person`` and
    ``orders_per_person`` (default a quarter of it, at least 1) are averages: activity
    is skewed, a quarter of the people have lapsed long ago, more have faded out
    lately, and a third never bought. A latent churn propensity drives both how a
    person behaved lately and whether they go quiet next (see :class:`_Profile`), so a
    churn model has something real to find.
    ``channels`` limits events and orders to those channels (event types only seen on
    other channels are left out). ``end``: the last moment (a date means the end of that
    Beijing day; default now).
    """
    if industry not in INDUSTRY:
        raise ValueError(f"unknown industry {industry!r}; expected one of {', '.join(INDUSTRIES)}")
    spec = INDUSTRY[industry]
    channels = [c for c in channels if c in CHANNELS]
    if not channels:
        raise ValueError("no known channel given")
    rng = np.random.default_rng(seed)
    end_moment = _end_moment(end)
    horizon = int(years * 365)
    n = int(people)
    oneids = np.arange(start_oneid, start_oneid + n, dtype="int64")

    persons = _people(rng, n, spec, horizon)
    customers = persons["frame"]
    customers.insert(0, "oneid", oneids)
    identities = _identities(rng, oneids, persons)
    opp = orders_per_person if orders_per_person is not None else max(1.0, events_per_person / 4)
    events = _events(rng, oneids, persons, spec, channels, events_per_person, end_moment)
    orders = _orders(rng, oneids, persons, spec, channels, opp, end_moment)
    return {"customers": customers, "identities": identities, "events": events, "orders": orders}


def _people(rng, n: int, spec: dict, horizon: int) -> dict:
    female = rng.random(n) < spec["female"]
    unknown = rng.random(n) < 0.04
    gender = np.where(unknown, 2, np.where(female, 0, 1))
    mean, sd = spec["age"]
    age = np.clip(np.round(rng.normal(mean, sd, n)), 16, 80)
    age_missing = rng.random(n) < 0.08
    place_keys, place = _pick(rng, {i: w for i, (_p, _c, w) in enumerate(PLACES)}, n)
    place = np.asarray(place_keys)[place]
    provinces = list(dict.fromkeys(p for p, _c, _w in PLACES))
    place_province = np.array([provinces.index(p) for p, _c, _w in PLACES])
    cities = [c for _p, c, _w in PLACES]
    city_missing = rng.random(n) < 0.05
    level_keys, level = _pick(rng, spec["member_levels"], n)
    points = np.round(rng.lognormal(6.0 + level * 0.8, 1.0, n))
    points[rng.random(n) < 0.15] = 0
    # registered: mostly over the last three years, some in the last month
    registered = np.where(rng.random(n) < 0.06, rng.integers(0, 30, n), rng.integers(30, 3 * 365, n))
    source_keys, source = _pick(rng, SOURCE_CHANNELS, n)
    skin_keys, skin = _pick(rng, SKIN_TYPES, n)
    if not spec["skin"]:
        skin[:] = -1
    else:
        skin[rng.random(n) < 0.15] = -1
    wecom = rng.random(n) < spec["wecom"]
    # activity: skewed; a latent churn propensity lowers it and brings the fade-out nearer
    propensity = rng.standard_normal(n)
    activity = rng.gamma(1.5, 1 / 1.5, n) * np.exp(-ENGAGEMENT_SPREAD * propensity - ENGAGEMENT_SPREAD**2 / 2)
    first_back = np.minimum(registered, horizon)
    lapsed = rng.random(n) < 0.25
    # an engaged spell of ``lifetime`` days, then a fade-out from its onset: begun within the
    # last RECENT_DAYS days, or, for the lapsed, faded 120 to 540 days ago
    lifetime = rng.exponential(LIFETIME_DAYS * np.exp(-CHURN_SPREAD * propensity))
    faded = rng.integers(120, 540, n)
    spell = np.minimum(first_back, np.where(lapsed, faded + lifetime, rng.uniform(0, RECENT_DAYS, n)))
    onset = np.minimum(np.where(lapsed, faded, spell - lifetime), spell)
    segment = rng.choice(3, size=n, p=[0.4, 0.25, 0.35])  # online, in store, both
    buyer = rng.random(n) < 0.67
    store_city = {c: i for i, c in enumerate(STORE_CITIES)}
    city_store = np.array([store_city.get(c, -1) for c in cities])[place]
    home_store = np.where(city_store >= 0, city_store, rng.integers(0, len(STORE_CITIES), n))

    frame = pd.DataFrame(
        {
            "gender": _categorical(gender, ["female", "male", "unknown"]),
            "age": pd.array(np.where(age_missing, np.nan, age), dtype="float64"),
            "birth_month": rng.integers(1, 13, n).astype("int64"),
            "province": _categorical(
                np.where(city_missing, -1, place_province[place]), provinces
            ).remove_unused_categories(),
            "city": _categorical(np.where(city_missing, -1, place), cities).remove_unused_categories(),
            "member_level": _categorical(level, level_keys),
            "points": points,
            "registered_days": registered.astype("int64"),
            "source_channel": _categorical(source, source_keys),
            "skin_type": _categorical(skin, skin_keys),
            "wecom_added": _categorical(wecom.astype("int16"), ["no", "yes"]),
        }
    )
    assert list(frame.columns) == list(PROFILE_ATTRIBUTES)
    return {
        "frame": frame,
        "activity": activity,
        "propensity": propensity,
        "profile": _Profile(first_back, spell, onset),
        "segment": segment,
        "buyer": buyer,
        "wecom": wecom,
        "home_store": home_store,
    }


def _identities(rng, oneids: np.ndarray, persons: dict) -> pd.DataFrame:
    n = len(oneids)
    i = oneids - oneids[0]
    has = {
        T.PHONE: rng.random(n) < 0.92,
        T.WECHAT_UNIONID: rng.random(n) < 0.7,
        T.WECHAT_OPENID: rng.random(n) < 0.65,
        T.WECOM_EXTERNAL_ID: persons["wecom"],
        T.DOUYIN_OPENID: rng.random(n) < 0.3,
        T.XIAOHONGSHU_ID: rng.random(n) < 0.2,
        T.JD_PIN: rng.random(n) < 0.15,
        T.TMALL_ID: rng.random(n) < 0.3,
        T.CRM_MEMBER_ID: rng.random(n) < 0.85,
        T.DEVICE_ID: rng.random(n) < 0.4,
    }
    nothing = ~np.any(np.vstack(list(has.values())), axis=0)
    has[T.CRM_MEMBER_ID] = has[T.CRM_MEMBER_ID] | nothing
    # Families share a tablet: a few device ids are held by two people with phones
    # (the device rule links them to neither's phone: they stay two people).
    device_number = _bijection(rng, i, 10**10)
    sharing = np.flatnonzero(has[T.DEVICE_ID] & has[T.PHONE])
    if len(sharing) >= 4:
        pairs = sharing[: (len(sharing) // 50) * 2].reshape(-1, 2)
        device_number[pairs[:, 1]] = device_number[pairs[:, 0]]
    values = {
        T.PHONE: lambda idx: _phones(rng, idx),
        T.WECHAT_UNIONID: lambda idx: _ids("oU", _bijection(rng, idx, 10**12), 12),
        T.WECHAT_OPENID: lambda idx: _ids("oM", _bijection(rng, idx, 10**12), 12),
        T.WECOM_EXTERNAL_ID: lambda idx: _ids("wmD", _bijection(rng, idx, 10**12), 12),
        T.DOUYIN_OPENID: lambda idx: _ids("dy_", _bijection(rng, idx, 10**12), 12),
        T.XIAOHONGSHU_ID: lambda idx: _ids("xhs", _bijection(rng, idx, 10**10), 10),
        T.JD_PIN: lambda idx: _ids("jd_", _bijection(rng, idx, 10**10), 10),
        T.TMALL_ID: lambda idx: _ids("tb", _bijection(rng, idx, 10**10), 10),
        T.CRM_MEMBER_ID: lambda idx: _ids("M", idx + 1, 8),
        T.DEVICE_ID: None,
    }
    parts = []
    for type_, mask in has.items():
        idx = np.flatnonzero(mask)
        if type_ == T.DEVICE_ID:
            value = _ids("dev-", device_number[idx], 10)
        else:
            value = values[type_](idx)
        parts.append(
            pa.table(
                {
                    "oneid": pa.array(oneids[idx]),
                    "type": pa.array(np.full(len(idx), list(T.values).index(type_), dtype="int8")),
                    "value": value,
                }
            )
        )
    table = pa.concat_tables(parts)
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    frame["type"] = _categorical(frame["type"].to_numpy(), T.values)
    frame.insert(
        2, "app", _categorical((frame["type"] == T.WECHAT_OPENID).to_numpy().astype("int16"), ["", MINI_APP])
    )
    return frame.sort_values(["oneid", "type"], kind="stable", ignore_index=True)


def _restricted(table: dict[str, float], channels: set[str]) -> dict[str, float]:
    return {k: v for k, v in table.items() if k in channels}


#: The planted churn signal (see :class:`_Profile`): a person's latent churn propensity
#: ``z`` (standard normal) divides their activity by ``exp(ENGAGEMENT_SPREAD * z)`` (mean
#: kept) and the expected length of their engaged spell (``LIFETIME_DAYS``) by
#: ``exp(CHURN_SPREAD * z)``. Measured with the churn warning's defaults: validation AUC
#: about 0.84 at 20,000 people, 0.79–0.85 at 1,000 (the demo brands).
RECENT_DAYS = 80
SPELL_WEIGHT = 40.0
LIFETIME_DAYS = 45.0
ENGAGEMENT_SPREAD = 1.0
CHURN_SPREAD = 1.0
FADE_DAYS = 3.0
FADE_SPAN = 30.0

#: Events generated per pass (bounds the temporary arrays; part of what a seed means).
EVENT_CHUNK = 1 << 21


def _events(
    rng, oneids, persons: dict, spec: dict, channels: list[str], per_person: float, end
) -> pd.DataFrame:
    allowed = set(channels)
    mix = {t: w for t, w in spec["events"].items() if _restricted(EVENT_CHANNELS[t], allowed)}
    types = list(mix)
    n = len(oneids)
    counts = rng.poisson(per_person * persons["profile"].rates(persons["activity"]))
    person = np.repeat(np.arange(n, dtype="int32"), counts)
    total = len(person)
    base = np.array([mix[t] for t in types], dtype=float)
    online = np.array([t in ONLINE_TYPES for t in types])
    in_store = np.array([t in STORE_TYPES for t in types])
    # online people rarely visit stores, store people rarely browse; everyone has a favourite
    segment_p = []
    for on, off in ((1.6, 0.15), (0.4, 2.5), (1.0, 1.0)):
        w = base * np.where(online, on, 1.0) * np.where(in_store, off, 1.0)
        segment_p.append(w / w.sum())
    favourite = rng.choice(len(types), size=n, p=base / base.sum()).astype("int16")
    channel_names = list(CHANNELS)
    type_channels = []
    for t in types:
        keys, p = _weights(_restricted(EVENT_CHANNELS[t], allowed))
        type_channels.append((np.array([channel_names.index(k) for k in keys], dtype="int16"), p))
    store_channel = channel_names.index("store")
    wecom_codes = [types.index(t) for t in WECOM_TYPES if t in types]
    content = types.index("content_view") if "content_view" in types else None
    views = [types.index(t) for t in ("page_view", "product_view") if t in types]
    follow_up = types.index("follow_up") if spec.get("follow_up_score") and "follow_up" in types else None
    properties = _PropertyPlan(rng, spec, types, n, total)

    type_code = np.empty(total, dtype="int16")
    channel_code = np.empty(total, dtype="int16")
    store_code = np.full(total, -1, dtype="int16")
    ns = np.empty(total, dtype="int64")
    value = np.full(total, np.nan)
    for start in range(0, total, EVENT_CHUNK):
        rows = slice(start, min(start + EVENT_CHUNK, total))
        who = person[rows]
        size = len(who)
        codes = np.empty(size, dtype="int16")
        segment = persons["segment"][who]
        for s, p in enumerate(segment_p):
            at = np.flatnonzero(segment == s)
            codes[at] = rng.choice(len(types), size=len(at), p=p)
        habit = rng.random(size) < 0.3
        codes[habit] = favourite[who[habit]]
        if content is not None and wecom_codes:  # WeCom chats only with people added on WeCom
            codes[np.isin(codes, wecom_codes) & ~persons["wecom"][who]] = content
        channel = np.empty(size, dtype="int16")
        for t_index, (choices, p) in enumerate(type_channels):
            at = np.flatnonzero(codes == t_index)
            channel[at] = choices[rng.choice(len(choices), size=len(at), p=p)]
        at_store = channel == store_channel
        store_code[rows][at_store] = persons["home_store"][who[at_store]]
        chunk_value = value[rows]
        at = np.isin(codes, views)
        chunk_value[at] = np.round(rng.lognormal(3.5, 0.8, int(at.sum())))
        if follow_up is not None:
            at = codes == follow_up
            chunk_value[at] = rng.choice(6, size=int(at.sum()), p=[0.15, 0.02, 0.03, 0.1, 0.3, 0.4])
        ns[rows] = _moment_ns(rng, end, _days_back(rng, persons, who))
        type_code[rows] = codes
        channel_code[rows] = channel
        properties.fill(rng, codes, who, rows)
    del person
    frame = pd.DataFrame(
        {
            "oneid": np.repeat(oneids, counts),
            "time": _utc(ns),
            "type": _categorical(type_code, types),
            "channel": _categorical(channel_code, channel_names),
            "store": _categorical(store_code, [spec["store"].format(city=c) for c in STORE_CITIES]),
            "value": value,
        },
        copy=False,
    )
    for key, column in properties.columns().items():
        frame[f"properties.{key}"] = column
    return frame


def _days_back(rng, persons: dict, person: np.ndarray) -> np.ndarray:
    """Days before the end of each event or order of ``person`` (see :class:`_Profile`)."""
    return persons["profile"].days_back(rng, person)


class _Profile:
    """When each person is active, in days before the end (``x``, fractional): the
    planted churn signal.

    A person has an **engaged spell** that began ``spell`` days back (within the last
    ``RECENT_DAYS`` days; for the lapsed quarter, before their fade-out 120 to 540 days
    back) and lasts ``lifetime`` days (exponential, shorter the higher their churn
    propensity), then **fades out** from its ``onset`` (negative: after the end): the rate
    decays exponentially (``FADE_DAYS``), cut after ``FADE_SPAN`` days. During the spell
    the rate is ``SPELL_WEIGHT`` times the rate before it (back to registration). So
    before a person goes quiet their visits thin out, their gaps grow and their recency
    rises: the past says something about the next week, and the next week is still
    drawn, not copied. ``weight``: each person's rate integrated over their days (in
    pre-spell rate days): their expected events are proportional to ``activity * weight``."""

    def __init__(self, first_back: np.ndarray, spell: np.ndarray, onset: np.ndarray):
        hi = first_back.astype("float64") + 1  # the registration day counts whole
        self.first_back = first_back.astype("int64")
        spell = np.minimum(spell.astype("float64"), hi)
        self.onset = onset = np.minimum(onset.astype("float64"), spell)
        self.lo = lo = np.clip(onset, 0, hi)
        self.recent = np.clip(spell - lo, 0, None)
        self.older_from = np.maximum(lo, spell)
        self.older = np.clip(hi - self.older_from, 0, None)
        self.tail_days = np.clip(onset, 0, FADE_SPAN)
        self.tail_mass = 1 - np.exp(-self.tail_days / FADE_DAYS)
        self.tail = SPELL_WEIGHT * FADE_DAYS * self.tail_mass
        self.weight = SPELL_WEIGHT * self.recent + self.older + self.tail

    def rates(self, activity: np.ndarray) -> np.ndarray:
        """Per person, expected events per event on average: ``activity * weight`` over its mean."""
        scaled = activity * self.weight
        mean = scaled.mean() if len(scaled) else 0.0
        return scaled / mean if mean > 0 else scaled

    def days_back(self, rng, person: np.ndarray) -> np.ndarray:
        """Whole days before the end, one per row of ``person``, drawn from each person's rate."""
        u = rng.random(len(person))
        u *= self.weight[person]
        recent = SPELL_WEIGHT * self.recent[person]
        older = self.older[person]
        x = self.lo[person] + u / SPELL_WEIGHT
        at = u >= recent
        x[at] = self.older_from[person[at]] + (u[at] - recent[at])
        at = u >= recent + older
        if at.any():
            who = person[at]
            v = (u[at] - recent[at] - older[at]) / self.tail[who]
            x[at] = self.onset[who] + FADE_DAYS * np.log1p(-np.minimum(v, 1) * self.tail_mass[who])
        days = np.floor(x).astype("int64")
        np.clip(days, 0, self.first_back[person], out=days)
        return days

    def active_until(self, person: np.ndarray) -> np.ndarray:
        """Days before the end when each row's person was last steadily active (0: still is)."""
        return np.floor(self.lo[person]).astype("int64")


class _PropertyPlan:
    """The ``properties.<key>`` columns of events: per event type, values drawn from the
    industry's tables; people mostly repeat their favourite value."""

    def __init__(self, rng, spec: dict, types: list[str], people: int, total: int):
        self.total = total
        self.tables = []  # (type index, names, mapping per name, probabilities, favourite per person)
        self.vocabulary: dict[str, list] = {}
        for type_, properties in spec["event_properties"].items():
            if type_ not in types:
                continue
            for key, table in properties.items():
                names = key if isinstance(key, tuple) else (key,)
                keys, p = _weights(table)
                mappings = []
                for position, name in enumerate(names):
                    vocabulary = self.vocabulary.setdefault(name, [])
                    labels = [k[position] if isinstance(k, tuple) else k for k in keys]
                    for label in labels:
                        if label not in vocabulary:
                            vocabulary.append(label)
                    mappings.append(np.array([vocabulary.index(label) for label in labels], dtype="int16"))
                favourite = rng.choice(len(keys), size=people, p=p).astype("int16")
                self.tables.append((types.index(type_), names, mappings, p, favourite))
        self.codes: dict[str, np.ndarray] = {}

    def fill(self, rng, codes: np.ndarray, who: np.ndarray, rows: slice) -> None:
        for type_index, names, mappings, p, favourite in self.tables:
            at = np.flatnonzero(codes == type_index)
            drawn = rng.choice(len(p), size=len(at), p=p).astype("int16")
            habit = rng.random(len(at)) < 0.6
            drawn[habit] = favourite[who[at[habit]]]
            for name, mapping in zip(names, mappings, strict=True):
                if name not in self.codes:
                    self.codes[name] = np.full(self.total, -1, dtype="int16")
                self.codes[name][rows][at] = mapping[drawn]

    def columns(self) -> dict[str, pd.Categorical]:
        return {name: _categorical(self.codes[name], self.vocabulary[name]) for name in self.codes}


def _orders(
    rng, oneids, persons: dict, spec: dict, channels: list[str], per_person: float, end
) -> pd.DataFrame:
    allowed = set(channels)
    order_channels = _restricted(spec["order_channels"], allowed)
    if not order_channels:
        return _empty_orders()
    rate = per_person * persons["profile"].rates(persons["activity"]) * persons["buyer"] / 0.67
    counts = rng.poisson(rate)
    person = np.repeat(np.arange(len(oneids), dtype="int32"), counts)
    total = len(person)
    category_keys, category = _pick(rng, spec["categories"], total)
    median = np.array([spec["categories"][k][1] for k in category_keys], dtype=float)[category]
    quantity = 1 + rng.poisson(spec["quantity"], total)
    amount = np.round(rng.lognormal(np.log(median), 0.45) * quantity, 2)
    discounted = rng.random(total) < 0.35
    discount = np.where(discounted, np.round(amount * rng.uniform(0.05, 0.3, total), 2), 0.0)
    channel_names = list(CHANNELS)
    keys, codes = _pick(rng, order_channels, total)
    channel_code = np.array([channel_names.index(k) for k in keys], dtype="int16")[codes]
    at_store = channel_code == channel_names.index("store")
    stores = [spec["store"].format(city=c) for c in STORE_CITIES]
    store_code = np.where(at_store, persons["home_store"][person], -1)
    days_back = _days_back(rng, persons, person)
    times = _utc(_moment_ns(rng, end, days_back))
    # a quarter of the orders fall in campaigns: moved into the campaign's days of that year
    campaign_names = list(spec["campaigns"])
    campaign_code = np.full(total, -1, dtype="int16")
    in_campaign = rng.random(total) < 0.25
    rows = np.flatnonzero(in_campaign)
    if len(rows) and campaign_names:
        chosen = rng.integers(0, len(campaign_names), len(rows))
        local = times.iloc[rows].dt.tz_convert(BEIJING_ZONE)
        month = np.array([spec["campaigns"][c][0] for c in campaign_names])[chosen]
        first = np.array([spec["campaigns"][c][1] for c in campaign_names])[chosen]
        last = np.array([spec["campaigns"][c][2] for c in campaign_names])[chosen]
        day = first + np.floor(rng.random(len(rows)) * (last - first + 1)).astype("int64")
        year = local.dt.year.to_numpy()
        target = pd.to_datetime({"year": year, "month": month, "day": day}) + pd.to_timedelta(
            local.dt.hour.to_numpy() * 3600 + local.dt.minute.to_numpy() * 60, unit="s"
        )
        target = target.dt.tz_localize(BEIJING_ZONE).dt.tz_convert("UTC")
        # not after the person's fade-out began (a campaign does not wake the churned)
        latest = end.value - persons["profile"].active_until(person[rows]) * (DAY * 10**9)
        fits = (
            (target <= end).to_numpy()
            & (pd.DatetimeIndex(target).as_unit("ns").asi8 <= latest)
            & (target >= end - pd.Timedelta(days=int(days_back.max()) + 1)).to_numpy()
        )
        rows, chosen, target = rows[fits], chosen[fits], target[fits]
        times.iloc[rows] = target.array
        campaign_code[rows] = chosen
    frame = pd.DataFrame(
        {
            "oneid": oneids[person],
            "time": times,
            "amount": amount,
            "quantity": quantity.astype("int64"),
            "channel": _categorical(channel_code, channel_names),
            "store": _categorical(store_code, stores),
            "category": _categorical(category, category_keys),
            "sku": _skus(rng, category, category_keys),
            "discount": discount,
        }
    )
    if campaign_names:
        frame["properties.campaign"] = _categorical(campaign_code, campaign_names)
    live_channels = [channel_names.index(c) for c in ("douyin", "wechat_channels")]
    for key, rule in spec["order_properties"].items():
        if isinstance(rule, float):
            p = np.full(total, rule)
            if key == "is_live":
                p = np.where(np.isin(channel_code, live_channels), 0.6, 0.03)
            frame[f"properties.{key}"] = rng.random(total) < p
            continue
        table, only = rule
        keys_, codes_ = _pick(rng, table, total)
        if only is not None:
            allowed_categories = [category_keys.index(c) for c in only if c in category_keys]
            codes_ = np.where(np.isin(category, allowed_categories), codes_, -1)
        frame[f"properties.{key}"] = _categorical(codes_, keys_)
    return frame


def _skus(rng, category: np.ndarray, category_keys: list) -> pd.Categorical:
    per_category = 12
    k = rng.integers(0, per_category, len(category))
    names = [f"SKU{c + 1:02d}{j + 1:02d}" for c in range(len(category_keys)) for j in range(per_category)]
    return _categorical(category.astype("int64") * per_category + k, names)


def _empty_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "oneid": pd.Series(dtype="int64"),
            "time": pd.Series(dtype="datetime64[ns, UTC]"),
            "amount": pd.Series(dtype="float64"),
            "quantity": pd.Series(dtype="int64"),
            **{c: pd.Series(dtype="category") for c in ("channel", "store", "category", "sku")},
            "discount": pd.Series(dtype="float64"),
        }
    )


def properties_dicts(frame: pd.DataFrame) -> list[dict]:
    """The ``properties.<key>`` columns of ``frame`` as one dict per row (for the database)."""
    out: list[dict] = [{} for _i in range(len(frame))]
    for column in frame.columns:
        if not column.startswith("properties."):
            continue
        key = column[len("properties.") :]
        values = frame[column]
        present = values.notna().to_numpy(dtype=bool)
        cells = values.to_numpy(dtype=object)
        for pos in np.flatnonzero(present):
            value = cells[pos]
            out[pos][key] = value.item() if isinstance(value, np.generic) else value
    return out


# ---------------------------------------------------------------------------
# Loading demo data into a brand


def load_demo(
    brand: Brand,
    people: int = 2000,
    seed: int = 1,
    *,
    events_per_person: float = 10,
    industry: str | None = None,
    channels=None,
    end=None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Generate demo people, events and orders (see :func:`generate`) and write them
    into ``brand``. Running it again with the same arguments adds nothing."""
    progress = progress or services.no_progress
    industry = industry or industry_for_brand(brand.code)
    channels = list(channels) if channels else list(CHANNELS)
    frames = generate(seed, people, events_per_person, channels, industry=industry, end=end)
    prefix = f"demo-{industry}-s{seed}-n{people}-e{events_per_person:g}"
    if set(channels) != set(CHANNELS):
        prefix += f"-c{zlib.crc32(','.join(sorted(channels)).encode()):x}"
    identities = frames["identities"]
    with transaction.atomic():
        resolved = services.resolve_identities(
            brand,
            identities.rename(columns={"oneid": "record"}),
            reason=_("Demo data"),
        )
        person = resolved.records.set_index("record")
        customers = frames["customers"].set_index("oneid")
        attributes = customers.astype(object).where(customers.notna(), None)
        rows = pd.DataFrame(
            {
                "customer_id": person.loc[customers.index, "customer_id"].to_numpy(),
                "attributes": [
                    {k: _json_value(v) for k, v in rec.items() if v is not None}
                    for rec in attributes.to_dict("records")
                ],
            }
        )
        new_people = set(person.loc[person["new"] > 0, "customer_id"])
        services.set_attributes(brand, rows[rows["customer_id"].isin(new_people)])
        counts = {
            "customers": resolved.customers_created,
            "identities": resolved.identities_created,
            "events": 0,
            "orders": 0,
        }
        for kind, frame in (("events", frames["events"]), ("orders", frames["orders"])):
            model = Event if kind == "events" else Order
            frame = frame.copy()
            frame["client_id"] = [f"{prefix}-{kind[0]}{i}" for i in range(len(frame))]
            seen = services.existing_client_ids(model, brand, frame["client_id"].tolist())
            frame = frame[~frame["client_id"].isin(seen)]
            if not len(frame):
                continue
            frame["customer_id"] = person.loc[frame["oneid"], "customer_id"].to_numpy()
            frame["identity_id"] = person.loc[frame["oneid"], "identity_id"].to_numpy()
            frame["properties"] = properties_dicts(frame)
            if kind == "events":
                counts["events"] = services.write_events(brand, frame, progress=progress)
            else:
                frame["items"] = [
                    [{"sku": sku, "quantity": int(q), "amount": f"{a:.2f}"}]
                    for sku, q, a in zip(frame["sku"], frame["quantity"], frame["amount"], strict=True)
                ]
                counts["orders"] = services.write_orders(brand, frame, progress=progress)
    return counts


def _json_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
