"""Benchmark: estimating audiences on the engine's bitmaps, against DuckDB and PostgreSQL.

On the people and computed tags of the engine benchmark (:mod:`benchmarks.compute`: the
same generator, seed and ``medical_aesthetics`` tags, computed by the engine in this
run), twenty fixed expressions of 3 to 8 conditions (AND / OR / NOT, enum ``in``,
booleans, number comparisons and bucket codes, nested groups) are counted

1. by the engine alone: :func:`tagportal.audiences.store.evaluate` on
   :class:`~tagportal.audiences.store.TagResult` objects built in memory from the
   computed bitmaps and numbers (warm: number comparisons cached after first use;
   cold: that cache emptied before each run);
2. through the API: ``POST /api/audiences/estimate/`` with Django's test client, on a
   throwaway database (SQLite in a temporary directory, or ``DATABASE_URL``'s server)
   holding the brand, the template's published tags, one customer per person and each
   tag's ``TagComputation`` / ``TagValueBitmap`` rows;
3. by DuckDB over a wide table: one row per person, one BOOLEAN column per
   (tag, value) and one DOUBLE column per number tag;
4. by PostgreSQL over a ``(person, tag, value, num)`` table (the tags the expressions
   read), each condition a subquery combined with INTERSECT / UNION / EXCEPT.

Every store must give the same count for every expression (DuckDB also the same
members). Writes ``benchmarks/results/audiences.json`` (figures, targets, machine) and
prints a table.

    python benchmarks/audiences.py [--people 1000000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks import compute, harness  # noqa: E402  (after the path is set)

#: What the issue asks.
TARGETS = {
    "engine_p50_ms": 1.0,  # at most
    "api_p50_ms": 10.0,  # at most
    "speedup_vs_duckdb": 10.0,  # at least
    "speedup_vs_postgres": 100.0,  # at least
}
ESTIMATE_URL = "/api/audiences/estimate/"
BUSINESS_LINE, BRAND = "yimei", "ruiyan"
POSTGRES_DB = "tagportal_bench_audiences"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# expressions ---------------------------------------------------------------------
def c(tag: str, op: str, value=None) -> dict:
    """A condition (tags named as in the template)."""
    return {"tag": tag, "op": op} if value is None else {"tag": tag, "op": op, "value": value}


def all_(*nodes) -> dict:
    return {"all": list(nodes)}


def any_(*nodes) -> dict:
    return {"any": list(nodes)}


def not_(node) -> dict:
    return {"not": node}


#: Twenty audiences a medical-aesthetics clinic would build, tags named as in the template.
#: Only rule tags: the tags algorithm models fill (churn risk, RFM segment, purchase
#: intent, AIPL stage) are not computed by the engine, so recency, spend and order counts
#: stand in for them.
EXPRESSIONS: list[tuple[str, dict]] = [
    (
        "oily skin, recent visit, not high churn",
        all_(
            c("skin_type", "eq", "oily"), c("last_visit_days", "lte", 30), not_(c("recency_days", "gt", 180))
        ),
    ),
    (
        "anti-ageing prospects 25-39",
        all_(
            c("gender", "eq", "female"),
            c("age", "between", [25, 39]),
            c("anti_aging_prospect", "eq", True),
            not_(c("complaint_risk", "eq", "high")),
        ),
    ),
    (
        "VIP win-back",
        all_(
            c("member_level", "in", ["gold", "platinum", "black_diamond"]),
            c("spend_365d", "gte", 20000),
            c("recency_days", "gt", 90),
            c("recency_days", "gt", 120),
        ),
    ),
    (
        "botox revisit reminder",
        all_(
            c("injection_user", "eq", True),
            c("botox_revisit_window", "eq", True),
            not_(c("appointment_no_show", "eq", True)),
        ),
    ),
    (
        "young acne and pores, active online",
        all_(
            any_(c("aesthetic_concern", "in", ["acne", "pores"]), c("skin_type", "eq", "oily")),
            c("skin_type", "in", ["oily", "combination"]),
            c("mp_active_30d", "eq", True),
            c("age", "lte", 30),
        ),
    ),
    (
        "post-op care for the unsatisfied",
        all_(
            c("postop_followup_due", "eq", True),
            c("postop_satisfaction", "in", ["dissatisfied", "neutral"]),
            c("wecom_added", "eq", True),
            not_(c("wecom_deleted_90d", "eq", True)),
        ),
    ),
    (
        "big-city high spenders, no complaints",
        all_(
            c("city_tier", "in", ["tier1", "new_tier1"]),
            c("avg_order_value", "gte", 5000),
            c("high_ticket_buyer", "eq", True),
            not_(any_(c("complaint_risk", "eq", "high"), c("wecom_deleted_90d", "eq", True))),
        ),
    ),
    (
        "consulted, did not buy, coupon-minded",
        all_(
            c("consult_no_deal_30d", "eq", True),
            c("consultations_90d", "gte", 2),
            c("coupon_sensitivity", "in", ["high", "medium"]),
            not_(c("order_count_365d", "gte", 3)),
        ),
    ),
    (
        "shopping-festival e-commerce buyers",
        all_(
            any_(c("double11_buyer", "eq", True), c("main_festival", "in", ["double11", "double12"])),
            c("coupons_used_180d", "gte", 1),
            c("spend_365d", "between", [1000, 50000]),
            c("source_channel", "in", ["ecommerce", "douyin", "xiaohongshu"]),
        ),
    ),
    (
        "new social-media members, no purchase yet",
        all_(
            c("new_member_30d", "eq", True),
            c("source_channel", "in", ["douyin", "xiaohongshu", "wechat"]),
            c("recency_days", "is_set", False),
            c("content_seeded_30d", "ne", True),
        ),
    ),
    (
        "engaged young women in the funnel",
        all_(
            c("order_count_365d", "is_set", False),
            any_(
                c("mp_active_30d", "eq", True),
                c("wecom_chats_30d", "gte", 1),
                c("content_seeded_30d", "eq", True),
            ),
            c("age_group", "in", ["age_25_29", "age_30_34"]),
            c("gender", "eq", "female"),
        ),
    ),
    (
        "sensitive skin, treated, no photoelectric",
        all_(
            c("sensitive_skin", "eq", True),
            any_(c("aesthetic_concern", "eq", "redness"), c("skin_type", "eq", "sensitive")),
            c("treatments_365d", "gte", 1),
            not_(c("photoelectric_user", "eq", True)),
        ),
    ),
    (
        "stored value at risk",
        all_(
            any_(
                c("spend_365d", "gte", 20000),
                c("order_count_365d", "gte", 3),
            ),
            c("stored_value_holder", "eq", True),
            c("last_visit_days", "gte", 60),
            not_(c("recency_days", "gt", 180)),
        ),
    ),
    (
        "photoelectric course due",
        all_(
            c("photoelectric_user", "eq", True),
            c("last_treatment_days", "between", [25, 45]),
            not_(c("postop_followup_due", "eq", True)),
            c("order_count_365d", "gte", 2),
        ),
    ),
    (
        "filler or botox window, members on WeCom",
        all_(
            any_(c("filler_revisit_window", "eq", True), c("botox_revisit_window", "eq", True)),
            c("member_level", "ne", "regular"),
            not_(c("appointment_no_show", "eq", True)),
            c("wecom_added", "eq", True),
        ),
    ),
    (
        "anti-ageing, two ways in",
        all_(
            any_(
                all_(c("gender", "eq", "female"), c("age", "gte", 35), c("anti_aging_user", "eq", True)),
                all_(c("aesthetic_concern", "in", ["wrinkles", "sagging"]), c("age", "gte", 40)),
            ),
            c("spend_365d", "gte", 5000),
            not_(c("complaint_risk", "eq", "high")),
        ),
    ),
    (
        "online buyers who skip the clinic",
        all_(
            c("channel_pref", "in", ["tmall", "jd", "douyin", "miniprogram"]),
            c("order_count_365d", "gte", 2),
            c("avg_order_value", "lt", 5000),
            not_(c("store_visits_90d", "gte", 1)),
            c("recency_days", "lte", 180),
        ),
    ),
    (
        "regulars with points to spend",
        all_(
            c("visit_frequency", "in", ["regular", "frequent", "very_frequent"]),
            c("points_balance", "in", ["medium", "high"]),
            c("member_level", "in", ["silver", "gold"]),
            not_(c("coupon_sensitivity", "eq", "none")),
            c("stored_value_holder", "eq", False),
        ),
    ),
    (
        "premium injection prospects (8 conditions)",
        all_(
            c("gender", "eq", "female"),
            c("age", "between", [25, 45]),
            c("city_tier", "in", ["tier1", "new_tier1", "tier2"]),
            any_(c("photoelectric_user", "eq", True), c("injection_user", "eq", True)),
            c("spend_365d", "gte", 10000),
            c("recency_days", "lte", 180),
            not_(c("recency_days", "gt", 120)),
        ),
    ),
    (
        "today's follow-up list",
        all_(
            any_(
                c("visited_today", "eq", True),
                c("appointment_no_show", "eq", True),
                all_(c("postop_followup_due", "eq", True), c("last_treatment_days", "lte", 7)),
            ),
            not_(c("wecom_deleted_90d", "eq", True)),
            c("wecom_added", "eq", True),
            c("store_visits_90d", "eq", "frequent"),
        ),
    ),
]


def rename(node, codes: dict[str, str]):
    """The expression with each tag's template name replaced by its code."""
    if isinstance(node, dict):
        if "tag" in node:
            return {**node, "tag": codes[node["tag"]]}
        return {key: rename(value, codes) for key, value in node.items()}
    if isinstance(node, list):
        return [rename(child, codes) for child in node]
    return node


def pack_tag_infos() -> dict:
    """The template's tags as :class:`~tagportal.audiences.expressions.TagInfo`, by name
    (to validate the expressions before the long run)."""
    from tagportal.audiences.expressions import TagInfo
    from tagportal.catalog.templates import get_pack

    out = {}
    for t in get_pack(compute.PACK).tags:
        values = () if t["value_type"] == "boolean" else tuple(v["code"] for v in t.get("values") or ())
        out[t["name"]] = TagInfo(0, t["name"], t["zh"], t["value_type"], values, 1)
    return out


def checked_expressions() -> list[dict]:
    from tagportal.audiences import expressions as ex

    infos = pack_tag_infos()
    out = []
    for name, expression in EXPRESSIONS:
        expression = ex.validate(expression, infos)
        conditions = ex.count_conditions(expression)
        if not 3 <= conditions <= 8:
            raise ValueError(f"{name}: {conditions} conditions, not 3 to 8")
        out.append({"name": name, "expression": expression, "conditions": conditions})
    return out


# the computed tags ---------------------------------------------------------------
def computed_tags(specs, engine: dict) -> dict:
    """``{template name: {"value_type", "bitmaps" {value text: BitMap}, "numbers"}}`` from
    :func:`benchmarks.compute.run_engine`, keyed and packed as the engine stores them."""
    from tagportal.engine import bitmaps as bm
    from tagportal.engine.results import value_text

    result = engine["result"]
    out = {}
    for spec in specs:
        if spec.code not in result.values:
            continue
        numbers = bm.numbers(result.values[spec.code]) if spec.value_type == "number" else None
        out[spec.code] = {
            "value_type": spec.value_type,
            "bitmaps": {value_text(k): b for k, b in engine["bitmaps"][spec.code].items()},
            "numbers": numbers.sort_index() if numbers is not None else None,
        }
    return out


def tag_result(pk: int, code: str, tag: dict, stamp=None, version=None):
    """A :class:`TagResult` built the way :meth:`BitmapStore._load` builds it."""
    from tagportal.audiences.store import make_result

    return make_result(
        pk, code, tag["value_type"], tag["bitmaps"], tag["numbers"], stamp=stamp, version=version
    )


# 1. the engine alone -----------------------------------------------------------------
def run_engine_alone(tags: dict, people, exprs: list[dict], runs: int, cold_runs: int) -> dict:
    from tagportal.audiences.store import evaluate

    load_s, results = harness.timed(
        lambda: {code: tag_result(i, code, tag) for i, (code, tag) in enumerate(tags.items(), 1)}
    )
    gc.collect()
    per, warm, cpu, cold, members = [], [], [], [], []
    for item in exprs:
        expression = item["expression"]

        def count(e=expression):
            return len(evaluate(e, results, people))

        cold_s = []
        for _ in range(cold_runs):
            for result in results.values():
                result.comparisons.clear()
            cold_s.append(harness.timed(count)[0])
        chosen = evaluate(expression, results, people)  # warm-up
        timings = [harness.timed_cpu(count) for _ in range(runs)]
        warm += [t[0] for t in timings]
        cpu += [t[1] for t in timings]
        cold += cold_s
        members.append(chosen)
        per.append(
            {
                "count": len(chosen),
                "cold": harness.percentiles_ms(cold_s),
                **harness.percentiles_ms([t[0] for t in timings]),
            }
        )
    return {
        "per_expression": per,
        "members": members,
        "warm": warm,
        "cpu": cpu,
        "cold": cold,
        "load_s": load_s,
    }


# 2. through the API ----------------------------------------------------------------
def insert_customers(brand, oneids) -> None:
    """One customer per person, written in bulk (raw SQL: no history rows)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from tagportal.profiles.models import Customer

    table = connection.ops.quote_name(Customer._meta.db_table)
    columns = ", ".join(
        connection.ops.quote_name(Customer._meta.get_field(f).column)
        for f in ("brand", "oneid", "attributes", "created", "last_updated")
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            suffix = f"\t{{}}\t{now}\t{now}\n"
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for lo in range(0, len(oneids), 200_000):
                    lines = (f"{brand.pk}\t{i}" for i in oneids[lo : lo + 200_000].tolist())
                    copy.write(suffix.join(lines) + suffix)
        else:
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s)",
                ((brand.pk, i, "{}", now, now) for i in oneids.tolist()),
            )


def store_computations(tags_by_name: dict, tags: dict, population: int, at) -> None:
    """Each tag's current result as the engine writes it (``_swap``)."""
    from django.db import transaction

    from tagportal.engine import bitmaps as bm
    from tagportal.engine.models import TagComputation, TagValueBitmap, pack_numbers

    for name, tag in tags_by_name.items():
        computed = tags.get(name)
        if computed is None:  # manual tags
            continue
        maps, numbers = computed["bitmaps"], computed["numbers"]
        if tag.value_type == "boolean":
            held = len(maps.get("true", ()))
        elif tag.value_type == "number":
            held = len(numbers) if numbers is not None else 0
        else:
            held = sum(len(b) for b in maps.values())
        with transaction.atomic():
            computation, _ = TagComputation.objects.update_or_create(
                tag=tag,
                defaults={
                    "version": tag.published_version,
                    "value_type": tag.value_type,
                    "last_calculated_at": at,
                    "population": population,
                    "coverage": min(1.0, held / population) if population else 0.0,
                    "distribution": {value: len(b) for value, b in maps.items()},
                    "numbers": pack_numbers(numbers) if tag.value_type == "number" else None,
                },
            )
            TagValueBitmap.objects.bulk_create(
                TagValueBitmap(computation=computation, value=value, bitmap=bm.serialize(b), count=len(b))
                for value, b in maps.items()
            )


def load_api(tags: dict, oneids) -> dict:
    """The brand, its published tags, its customers and tag results; an admin."""
    from django.utils import timezone

    from tagportal.catalog.models import Brand, BusinessLine, Tag
    from tagportal.catalog.services import apply_template
    from tagportal.catalog.templates import get_pack
    from tagportal.core.models import User
    from tagportal.core.roles import ADMIN, ensure_roles

    timings = {}
    started = time.perf_counter()
    groups = ensure_roles()
    line = BusinessLine.objects.create(code=BUSINESS_LINE, name="医美")
    brand = Brand.objects.create(code=BRAND, name="瑞颜", business_line=line)
    admin = User.objects.create_user("bench_admin", is_staff=True)
    admin.groups.add(groups[ADMIN])
    applied = apply_template(brand, compute.PACK, owner=admin)
    names = [t["name"] for t in get_pack(compute.PACK).ordered_tags()]
    if len(names) != len(applied.created):
        raise RuntimeError(f"template created {len(applied.created)} tags, expected {len(names)}")
    codes = dict(zip(names, applied.created, strict=True))
    for name, code in codes.items():
        if not code.endswith(name):
            raise RuntimeError(f"tag {name} got the code {code}")
    by_code = {t.code: t for t in Tag.objects.filter(brand=brand)}
    timings["template_s"] = time.perf_counter() - started

    started = time.perf_counter()
    insert_customers(brand, oneids)
    timings["customers_s"] = time.perf_counter() - started

    started = time.perf_counter()
    tags_by_name = {name: by_code[code] for name, code in codes.items()}
    store_computations(tags_by_name, tags, len(oneids), timezone.now())
    timings["results_s"] = time.perf_counter() - started
    return {"brand": brand, "admin": admin, "codes": codes, "timings": timings}


def run_api(loaded: dict, exprs: list[dict], runs: int) -> dict:
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from tagportal.audiences.store import STORE

    STORE.clear()
    # as another system calls the API: a token (the builder page uses its session)
    token, _created = Token.objects.get_or_create(user=loaded["admin"])
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    per, timings_all, cpu_all, took_all, first_all, sizes = [], [], [], [], [], []
    gc.collect()
    for item in exprs:
        body = json.dumps({"brand": BRAND, "expression": rename(item["expression"], loaded["codes"])})

        def post(body=body):
            response = client.post(ESTIMATE_URL, body, content_type="application/json")
            if response.status_code != 200:
                raise RuntimeError(f"estimate answered {response.status_code}: {response.content[:500]!r}")
            return response.json()

        first_s, answer = harness.timed(post)  # warm-up: loads the tags' bitmaps into the store
        timings = []
        for _ in range(runs):
            seconds, cpu_s, again = harness.timed_cpu(post)
            timings.append(seconds)
            cpu_all.append(cpu_s)
            took_all.append(again["took_ms"] / 1000)
            if again["size"] != answer["size"]:
                raise RuntimeError("the estimate changed between two calls")
        timings_all += timings
        first_all.append(first_s)
        sizes.append(answer["size"])
        per.append(
            {
                "count": answer["size"],
                "population": answer["population"],
                "first_call_ms": round(first_s * 1000, 3),
                "took_ms_reported": answer["took_ms"],
                **harness.percentiles_ms(timings),
            }
        )
    return {
        "per_expression": per,
        "timings": timings_all,
        "cpu": cpu_all,
        "took": took_all,
        "first": first_all,
        "sizes": sizes,
    }


# 3. DuckDB over a wide boolean table ---------------------------------------------------
def _column(tag: str, value: str | None = None) -> str:
    return f'"{tag}"' if value is None else f'"{tag}__{value}"'


def wide_table(tags: dict, oneids):
    """One row per person: a BOOLEAN column per (tag, value), a DOUBLE per number tag."""
    import numpy as np
    import pyarrow as pa

    from tagportal.engine import bitmaps as bm

    columns = {"oneid": pa.array(oneids, type=pa.int64())}
    for code, tag in tags.items():
        for value, members in tag["bitmaps"].items():
            flags = np.zeros(len(oneids), dtype=bool)
            flags[np.searchsorted(oneids, bm.bitmap_ids(members))] = True
            columns[f"{code}__{value}"] = pa.array(flags, type=pa.bool_())
        numbers = tag["numbers"]
        if numbers is not None:
            values = np.full(len(oneids), np.nan)
            values[np.searchsorted(oneids, numbers.index.to_numpy(dtype="int64"))] = numbers.to_numpy()
            columns[code] = pa.array(values, type=pa.float64(), mask=np.isnan(values))
    return pa.table(columns)


def _number(value) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def duck_predicate(node: dict, tags: dict) -> str:
    """The expression as a WHERE clause on the wide table (never NULL, so NOT is exact)."""
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        joiner = " AND " if key == "all" else " OR "
        return "(" + joiner.join(duck_predicate(child, tags) for child in node[key]) + ")"
    if "not" in node:
        return f"(NOT {duck_predicate(node['not'], tags)})"
    code, op, value = node["tag"], node["op"], node.get("value", True)
    tag = tags[code]
    have = [_column(code, v) for v in tag["bitmaps"]]
    if tag["numbers"] is not None:
        have.append(f"{_column(code)} IS NOT NULL")
    any_value = "(" + " OR ".join(have) + ")" if have else "FALSE"

    def picked(values) -> str:
        cols = [_column(code, v) for v in values if v in tag["bitmaps"]]
        return "(" + " OR ".join(cols) + ")" if cols else "FALSE"

    if op == "is_set":
        return any_value if value else f"(NOT {any_value})"
    if tag["value_type"] == "boolean":
        chosen = picked(["true" if value else "false"])
        return chosen if op == "eq" else f"({any_value} AND NOT {chosen})"
    bucket = isinstance(value, str) or (op == "in" and isinstance(value[0], str))
    if tag["value_type"] == "number" and not bucket:
        column = _column(code)
        if op == "between":
            condition = f"{column} BETWEEN {_number(value[0])} AND {_number(value[1])}"
        else:
            sign = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            condition = f"{column} {sign} {_number(value)}"
        return f"COALESCE({condition}, FALSE)"
    chosen = picked([value] if op in ("eq", "ne") else value)
    return chosen if op in ("eq", "in") else f"({any_value} AND NOT {chosen})"


def run_duckdb(tags: dict, oneids, exprs: list[dict], runs: int, threads: int) -> dict:
    import duckdb

    started = time.perf_counter()
    table = wide_table(tags, oneids)
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.register("wide_source", table)
    con.execute("CREATE TABLE wide AS SELECT * FROM wide_source")
    con.unregister("wide_source")
    width = len(table.columns)
    del table
    load_s = time.perf_counter() - started
    gc.collect()
    per, timings_all, member_sets = [], [], []
    for item in exprs:
        where = duck_predicate(item["expression"], tags)
        query = f"SELECT count(*) FROM wide WHERE {where}"
        count = con.execute(query).fetchone()[0]  # warm-up
        timings = []
        for _ in range(runs):
            seconds, again = harness.timed(lambda q=query: con.execute(q).fetchone()[0])
            timings.append(seconds)
            if again != count:
                raise RuntimeError("DuckDB's count changed between two runs")
        ids = con.execute(f"SELECT oneid FROM wide WHERE {where} ORDER BY oneid").fetchnumpy()["oneid"]
        member_sets.append(ids)
        timings_all += timings
        per.append({"count": int(count), "sql": query, **harness.percentiles_ms(timings)})
    con.close()
    return {
        "per_expression": per,
        "timings": timings_all,
        "members": member_sets,
        "load_s": load_s,
        "columns": width,
    }


# 4. PostgreSQL over (person, tag, value, num) ----------------------------------------------
def postgres_url() -> str:
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("DATABASE_URL") or ""
    return url if url.startswith(("postgres://", "postgresql://")) else POSTGRES_URL


def tags_read(exprs: list[dict]) -> list[str]:
    from tagportal.audiences import expressions as ex

    found: set[str] = set()
    for item in exprs:
        found |= ex.tag_codes(item["expression"])
    return sorted(found)


def pg_condition(node: dict, tags: dict) -> str:
    """The people a condition selects, as a SELECT on ``facts`` (or ``people``)."""
    code, op, value = node["tag"], node["op"], node.get("value", True)
    tag = tags[code]
    rows = f"SELECT person FROM facts WHERE tag = {_quote(code)}"
    if op == "is_set":
        return rows if value else f"SELECT person FROM people EXCEPT {rows}"
    if tag["value_type"] == "boolean":
        chosen = "true" if value else "false"
        return f"{rows} AND value {'=' if op == 'eq' else '<>'} {_quote(chosen)}"
    bucket = isinstance(value, str) or (op == "in" and isinstance(value[0], str))
    if tag["value_type"] == "number" and not bucket:
        if op == "between":
            return f"{rows} AND num BETWEEN {_number(value[0])} AND {_number(value[1])}"
        sign = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"{rows} AND num {sign} {_number(value)}"
    values = ", ".join(_quote(v) for v in ([value] if op in ("eq", "ne") else value))
    return f"{rows} AND value {'IN' if op in ('eq', 'in') else 'NOT IN'} ({values})"


def pg_query(node: dict, tags: dict) -> str:
    """The expression as set operations: AND is INTERSECT, OR is UNION, NOT is
    ``people EXCEPT``."""
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        joiner = " INTERSECT " if key == "all" else " UNION "
        return joiner.join(f"({pg_query(child, tags)})" for child in node[key])
    if "not" in node:
        return f"(SELECT person FROM people) EXCEPT ({pg_query(node['not'], tags)})"
    return pg_condition(node, tags)


def _fact_chunks(code: str, tag: dict):
    """``COPY`` text rows of one tag: ``person, tag, value, num``."""
    import numpy as np
    import pandas as pd

    from tagportal.engine import bitmaps as bm

    numbers = tag["numbers"]
    if numbers is None:
        for value, members in tag["bitmaps"].items():
            if members:
                suffix = f"\t{code}\t{value}\t\\N\n"
                yield suffix.join(map(str, bm.bitmap_ids(members).tolist())) + suffix
        return
    ids = numbers.index.to_numpy(dtype="int64")
    labels = np.full(len(ids), None, dtype=object)
    for value, members in tag["bitmaps"].items():
        labels[np.searchsorted(ids, bm.bitmap_ids(members))] = value
    for lo in range(0, len(ids), 250_000):
        frame = pd.DataFrame(
            {
                "person": ids[lo : lo + 250_000],
                "tag": code,
                "value": labels[lo : lo + 250_000],
                "num": numbers.to_numpy()[lo : lo + 250_000],
            }
        )
        buffer = io.StringIO()
        frame.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N")
        yield buffer.getvalue()


def run_postgres(tags: dict, oneids, exprs: list[dict], runs: int, url: str, dbname: str) -> dict:
    import psycopg
    from psycopg.conninfo import make_conninfo

    admin = psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{dbname}"')
    try:
        with psycopg.connect(make_conninfo(url, dbname=dbname), autocommit=True) as con:
            out = _postgres(con, tags, oneids, exprs, runs)
            out["server"] = con.execute("SHOW server_version").fetchone()[0]
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()
    out["database"] = dbname
    return out


def _postgres(con, tags: dict, oneids, exprs: list[dict], runs: int) -> dict:
    read = tags_read(exprs)
    started = time.perf_counter()
    con.execute("CREATE TABLE people (person BIGINT PRIMARY KEY)")
    con.execute(
        "CREATE TABLE facts (person BIGINT NOT NULL, tag TEXT NOT NULL, value TEXT, num DOUBLE PRECISION)"
    )
    with con.cursor() as cursor:
        with cursor.copy("COPY people (person) FROM STDIN") as copy:
            for lo in range(0, len(oneids), 500_000):
                copy.write("\n".join(map(str, oneids[lo : lo + 500_000].tolist())) + "\n")
        with cursor.copy("COPY facts (person, tag, value, num) FROM STDIN") as copy:
            for code in read:
                for chunk in _fact_chunks(code, tags[code]):
                    copy.write(chunk)
    copied = time.perf_counter()
    con.execute("SET maintenance_work_mem = '1GB'")
    con.execute("CREATE INDEX facts_tag_value ON facts (tag, value, person)")
    con.execute("CREATE INDEX facts_tag_num ON facts (tag, num, person)")
    con.execute("VACUUM ANALYZE people")
    con.execute("VACUUM ANALYZE facts")
    rows = con.execute("SELECT count(*) FROM facts").fetchone()[0]
    load_s = time.perf_counter() - started
    # the session's best shot: hash set operations in memory, no JIT compilation per query
    con.execute("SET work_mem = '256MB'")
    con.execute("SET jit = off")
    per, timings_all = [], []
    gc.collect()
    for item in exprs:
        query = f"SELECT count(*) FROM ({pg_query(item['expression'], tags)}) AS chosen"
        count = con.execute(query).fetchone()[0]  # warm-up
        timings = []
        for _ in range(runs):
            seconds, again = harness.timed(lambda q=query: con.execute(q).fetchone()[0])
            timings.append(seconds)
            if again != count:
                raise RuntimeError("PostgreSQL's count changed between two runs")
        timings_all += timings
        per.append({"count": int(count), "sql": query, **harness.percentiles_ms(timings)})
    return {
        "per_expression": per,
        "timings": timings_all,
        "load_s": load_s,
        "copy_s": copied - started,
        "rows": int(rows),
        "tags_loaded": read,
        "settings": {"work_mem": "256MB", "jit": "off"},
    }


# the run -------------------------------------------------------------------------------
def run(
    people: int = 1_000_000,
    events_per_person: float = 10,
    seed: int = 1,
    engine_runs: int = 50,
    cold_runs: int = 3,
    api_runs: int = 20,
    duckdb_runs: int = 20,
    postgres_runs: int = 5,
    postgres: bool = True,
    postgres_db: str = POSTGRES_DB,
    duckdb_threads: int = 2,
    quiet: bool = False,
) -> dict:
    import numpy as np

    from tagportal.engine import bitmaps as bm

    harness.setup_django()
    # whitenoise warns once that collectstatic has not run; the API does not serve files
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    load_at_start = harness.load_average()
    exprs = checked_expressions()
    specs, _realtime = compute.tag_specs()

    harness.log(f"generating {people:,} people, {events_per_person} events each (seed {seed})", quiet)
    generate_s, data = harness.timed(lambda: compute.generate_data(people, events_per_person, seed))
    frames = compute.engine_frames(data)

    harness.log(f"computing {len(specs)} tags with the engine", quiet)
    engine = compute.run_engine(specs, frames, compute.END)
    harness.log(f"  {engine['seconds']:.1f} s", quiet)
    tags = computed_tags(specs, engine)
    oneids = np.sort(engine["result"].population.to_numpy(dtype="int64"))
    tag_errors = dict(engine["result"].errors)
    compute_s = engine["seconds"]
    del data, frames, engine
    gc.collect()
    population = bm.bitmap(oneids)

    harness.log(f"engine alone: {len(exprs)} expressions x {engine_runs} runs", quiet)
    alone = run_engine_alone(tags, population, exprs, engine_runs, cold_runs)
    warm, cold = harness.percentiles_ms(alone["warm"]), harness.percentiles_ms(alone["cold"])
    harness.log(
        f"  p50 {warm['p50_ms']:.3f} ms, p99 {warm['p99_ms']:.3f} ms (cold p50 {cold['p50_ms']:.3f})", quiet
    )

    harness.log("API: building the database", quiet)
    with tempfile.TemporaryDirectory(prefix="tagportal-audiences-") as tmpdir:
        started = time.perf_counter()
        # tables straight from the models: the migrations add nothing else but beat schedules
        with harness.throwaway_database(f"{postgres_db}_api", tmpdir, migrate=False) as connection:
            migrate_s = time.perf_counter() - started
            loaded = load_api(tags, oneids)
            api_load_s = time.perf_counter() - started
            harness.log(
                f"  {api_load_s:.1f} s on {connection.vendor}; {len(exprs)} expressions x {api_runs} calls",
                quiet,
            )
            api = run_api(loaded, exprs, api_runs)
            api_vendor = connection.vendor
    api_stats = harness.percentiles_ms(api["timings"])
    harness.log(f"  p50 {api_stats['p50_ms']:.2f} ms, p99 {api_stats['p99_ms']:.2f} ms", quiet)

    harness.log(f"DuckDB: wide table, {len(exprs)} expressions x {duckdb_runs} runs", quiet)
    duck = run_duckdb(tags, oneids, exprs, duckdb_runs, duckdb_threads)
    duck_stats = harness.percentiles_ms(duck["timings"])
    harness.log(f"  loaded in {duck['load_s']:.1f} s; p50 {duck_stats['p50_ms']:.2f} ms", quiet)

    pg, pg_stats = None, None
    if postgres:
        harness.log(
            f"PostgreSQL: (person, tag, value, num), {len(exprs)} expressions x {postgres_runs} runs", quiet
        )
        pg = run_postgres(tags, oneids, exprs, postgres_runs, postgres_url(), postgres_db)
        pg_stats = harness.percentiles_ms(pg["timings"])
        harness.log(
            f"  {pg['rows']:,} rows loaded in {pg['load_s']:.1f} s; p50 {pg_stats['p50_ms']:.1f} ms", quiet
        )

    # the same answers everywhere
    per_expression, differ = [], []
    for i, item in enumerate(exprs):
        counts = {
            "engine": alone["per_expression"][i]["count"],
            "api": api["per_expression"][i]["count"],
            "duckdb": duck["per_expression"][i]["count"],
        }
        if pg is not None:
            counts["postgres"] = pg["per_expression"][i]["count"]
        same_members = bool(np.array_equal(bm.bitmap_ids(alone["members"][i]), duck["members"][i]))
        same = len(set(counts.values())) == 1 and same_members
        if not same:
            differ.append(item["name"])
        row = {
            "name": item["name"],
            "conditions": item["conditions"],
            "expression": item["expression"],
            "counts": counts,
            "share": round(counts["engine"] / len(oneids), 6) if len(oneids) else 0.0,
            "identical": same,
            "engine_members_equal_duckdb_members": same_members,
            "engine_ms": {k: alone["per_expression"][i][k] for k in ("p50_ms", "p99_ms")},
            "engine_cold_ms": {k: alone["per_expression"][i]["cold"][k] for k in ("p50_ms", "p99_ms")},
            "api_ms": {k: api["per_expression"][i][k] for k in ("p50_ms", "p99_ms", "first_call_ms")},
            "duckdb_ms": {k: duck["per_expression"][i][k] for k in ("p50_ms", "p99_ms")},
            "duckdb_sql": duck["per_expression"][i]["sql"],
        }
        if pg is not None:
            row["postgres_ms"] = {k: pg["per_expression"][i][k] for k in ("p50_ms", "p99_ms")}
            row["postgres_sql"] = pg["per_expression"][i]["sql"]
        per_expression.append(row)

    engine_p50 = warm["p50_ms"]
    results = {
        "benchmark": "audience estimates",
        "pack": compute.PACK,
        "seed": seed,
        "people": len(oneids),
        "events_per_person": events_per_person,
        "tags": len(tags),
        "tag_errors": tag_errors,
        "expressions": len(exprs),
        "conditions_per_expression": [item["conditions"] for item in exprs],
        "engine_p50_ms": engine_p50,
        "engine_p99_ms": warm["p99_ms"],
        "engine_cold_p50_ms": cold["p50_ms"],
        "engine_cold_p99_ms": cold["p99_ms"],
        "api_p50_ms": api_stats["p50_ms"],
        "api_p99_ms": api_stats["p99_ms"],
        "api_first_call_p50_ms": harness.percentiles_ms(api["first"])["p50_ms"],
        "api_service_p50_ms": harness.percentiles_ms(api["took"])["p50_ms"],
        "engine_cpu_p50_ms": harness.percentiles_ms(alone["cpu"])["p50_ms"],
        "api_cpu_p50_ms": harness.percentiles_ms(api["cpu"])["p50_ms"],
        "api_cpu_p99_ms": harness.percentiles_ms(api["cpu"])["p99_ms"],
        "duckdb_p50_ms": duck_stats["p50_ms"],
        "duckdb_p99_ms": duck_stats["p99_ms"],
        "postgres_p50_ms": pg_stats["p50_ms"] if pg_stats else None,
        "postgres_p99_ms": pg_stats["p99_ms"] if pg_stats else None,
        # from the unrounded medians
        "speedup_vs_duckdb": harness.speedup(
            harness.median(duck["timings"]), harness.median(alone["warm"]), digits=1
        ),
        "speedup_vs_postgres": harness.speedup(
            harness.median(pg["timings"]), harness.median(alone["warm"]), digits=1
        )
        if pg
        else None,
        "identical_results": not differ,
        "differing_expressions": differ,
        "runs": {
            "engine": engine_runs,
            "engine_cold": cold_runs,
            "api": api_runs,
            "duckdb": duckdb_runs,
            "postgres": postgres_runs if postgres else 0,
        },
        "timings": {"engine": warm, "engine_cold": cold, "api": api_stats, "duckdb": duck_stats},
        "load_seconds": {
            "generate": round(generate_s, 2),
            "compute_tags": round(compute_s, 2),
            "engine": round(alone["load_s"], 2),
            "api": round(api_load_s, 2),
            "api_parts": {
                "create_database": round(migrate_s, 2),
                **{k: round(v, 2) for k, v in loaded["timings"].items()},
            },
            "duckdb": round(duck["load_s"], 2),
            "postgres": round(pg["load_s"], 2) if pg else None,
        },
        "api_database": api_vendor,
        "duckdb_threads": duckdb_threads,
        "duckdb_columns": duck["columns"],
        "per_expression": per_expression,
    }
    if pg is not None:
        results["timings"]["postgres"] = pg_stats
        results["postgres"] = {k: pg[k] for k in ("rows", "tags_loaded", "settings", "server", "copy_s")}
    results["notes"] = {
        "engine": "tagportal.audiences.store.evaluate + len() on TagResults built in memory from the "
        "computed bitmaps and numbers (as BitmapStore._load builds them); one warm-up, then "
        f"{engine_runs} runs per expression. Number comparisons are cached after first use: "
        f"engine_cold_* empties that cache before each of {cold_runs} runs per expression",
        "api": "POST /api/audiences/estimate/ with Django's test client as an admin (session login), "
        "database "
        f"{api_vendor}; the first call per expression loads the tags' bitmaps into the per-process "
        "store (api_first_call_p50_ms) and is left out; customers inserted with raw SQL (no history). "
        "api_service_p50_ms is the took_ms the service reports (services.estimate: brand, permission, "
        "members.select); the rest is HTTP, session, DRF",
        "cpu": "engine_cpu_p50_ms / api_cpu_p*_ms: CPU time of this process per call (process_time), "
        "the work done without the wait for a core on a busy machine; the targets are judged on "
        "wall time",
        "duckdb": "SELECT count(*) FROM wide WHERE ... on a DuckDB table (not a registered frame), one "
        "BOOLEAN column per (tag, value), a DOUBLE per number tag; one warm-up per expression",
        "postgres": "SELECT count(*) over INTERSECT / UNION / EXCEPT of one subquery per condition on "
        "facts(person, tag, value, num) holding the tags the expressions read, indexes on "
        "(tag, value, person) and (tag, num, person), VACUUM ANALYZE; work_mem 256MB, jit off; "
        "one warm-up per expression",
        "identical_results": "engine, API, DuckDB (and PostgreSQL) give the same count for every "
        "expression, and DuckDB the same members as the engine",
        "machine": "a shared machine: see load_average (1, 5, 15 minutes) at start and end",
    }
    met = {
        "engine_p50_ms": results["engine_p50_ms"] <= TARGETS["engine_p50_ms"],
        "api_p50_ms": results["api_p50_ms"] <= TARGETS["api_p50_ms"],
        "speedup_vs_duckdb": (results["speedup_vs_duckdb"] or 0) >= TARGETS["speedup_vs_duckdb"],
        "speedup_vs_postgres": None
        if results["speedup_vs_postgres"] is None
        else results["speedup_vs_postgres"] >= TARGETS["speedup_vs_postgres"],
        "identical_results": results["identical_results"],
    }
    results["targets"] = {
        "engine_p50_ms": f"<= {TARGETS['engine_p50_ms']:g}",
        "api_p50_ms": f"<= {TARGETS['api_p50_ms']:g}",
        "speedup_vs_duckdb": f">= {TARGETS['speedup_vs_duckdb']:g}",
        "speedup_vs_postgres": f">= {TARGETS['speedup_vs_postgres']:g}",
        "identical_results": "true",
    }
    results["meets_targets"] = met
    results["all_targets_met"] = all(v is True for v in met.values())
    results["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["machine"] = harness.machine(load_at_start=load_at_start)
    results["process_peak_rss_mb"] = round(harness.process_peak_rss_mb())
    return results


def table(results: dict) -> str:
    """The figures against the targets, and the counts per expression, as text."""

    def ok(key):
        value = results["meets_targets"].get(key)
        return "" if value is None else ("ok" if value else "FAIL")

    def ms(value):
        return "-" if value is None else f"{value:.3f} ms"

    def times(value):
        return "-" if value is None else f"{value:g}x"

    rows = [
        ("people / expressions", f"{results['people']:,} / {results['expressions']}", "", ""),
        ("engine p50 / p99", f"{ms(results['engine_p50_ms'])} / {ms(results['engine_p99_ms'])}",
         results["targets"]["engine_p50_ms"] + " ms", ok("engine_p50_ms")),
        ("engine cold p50", ms(results["engine_cold_p50_ms"]), "", ""),
        ("API p50 / p99", f"{ms(results['api_p50_ms'])} / {ms(results['api_p99_ms'])}",
         results["targets"]["api_p50_ms"] + " ms", ok("api_p50_ms")),
        ("DuckDB p50 / p99", f"{ms(results['duckdb_p50_ms'])} / {ms(results['duckdb_p99_ms'])}", "", ""),
        ("  engine speed-up", times(results["speedup_vs_duckdb"]), results["targets"]["speedup_vs_duckdb"] + "x",
         ok("speedup_vs_duckdb")),
        ("PostgreSQL p50 / p99", f"{ms(results['postgres_p50_ms'])} / {ms(results['postgres_p99_ms'])}", "", ""),
        ("  engine speed-up", times(results["speedup_vs_postgres"]),
         results["targets"]["speedup_vs_postgres"] + "x", ok("speedup_vs_postgres")),
        ("identical results", str(results["identical_results"]).lower(), "true", ok("identical_results")),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append("")
    lines.append(f"{'expression':44} {'n':>3} {'count':>9} {'engine':>8} {'API':>8} {'DuckDB':>8} {'PG':>9}")
    for row in results["per_expression"]:
        pg = row.get("postgres_ms", {}).get("p50_ms")
        lines.append(
            f"{row['name'][:44]:44} {row['conditions']:>3} {row['counts']['engine']:>9,} "
            f"{row['engine_ms']['p50_ms']:>8.3f} {row['api_ms']['p50_ms']:>8.2f} "
            f"{row['duckdb_ms']['p50_ms']:>8.2f} {'-' if pg is None else f'{pg:.1f}':>9}"
            + ("" if row["identical"] else "  DIFFER")
        )
    lines.append("(p50 in ms)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events-per-person", type=float, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine-runs", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--api-runs", type=int, default=20)
    parser.add_argument("--duckdb-runs", type=int, default=20)
    parser.add_argument("--postgres-runs", type=int, default=5)
    parser.add_argument("--duckdb-threads", type=int, default=2)
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL baseline (no server at hand)"
    )
    parser.add_argument(
        "--postgres-db",
        default=POSTGRES_DB,
        help="database created for the baseline and dropped at the end (server: BENCH_POSTGRES_URL, "
        f"else a postgres DATABASE_URL, else {POSTGRES_URL})",
    )
    harness.add_output_argument(parser, "audiences")
    args = parser.parse_args(argv)
    results = run(
        people=args.people,
        events_per_person=args.events_per_person,
        seed=args.seed,
        engine_runs=args.engine_runs,
        cold_runs=args.cold_runs,
        api_runs=args.api_runs,
        duckdb_runs=args.duckdb_runs,
        postgres_runs=args.postgres_runs,
        postgres=not args.no_postgres,
        postgres_db=args.postgres_db,
        duckdb_threads=args.duckdb_threads,
    )
    output = harness.write(results, args.output)
    print(table(results))
    print(f"written to {output}")
    return results


if __name__ == "__main__":
    main()
