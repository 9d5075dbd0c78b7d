"""Benchmark: the tag changelist renders with a constant number of queries.

Builds a throwaway database (SQLite in memory, or ``bench_changelist`` on
``DATABASE_URL``'s server), fills it with 100 tags (the baseline) and then 10,000
tags, and renders the admin changelist for an admin and for an operator with filters
and a Chinese search.
Writes ``benchmarks/results/changelist.json``.

    python benchmarks/changelist.py [--tags 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks import harness  # noqa: E402  (after the path is set)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    harness.add_output_argument(parser, "changelist")
    args = parser.parse_args(argv)

    harness.setup_django()
    load_at_start = harness.load_average()
    # in memory on SQLite (the test settings' database), else a database of its own
    with harness.throwaway_database("bench_changelist") as connection:
        results = run(args)
        results["machine"] = harness.machine(connection, load_at_start)
    harness.write(results, args.output)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return results


def fill(count, brands, categories, regions, owner, start):
    from tagportal.catalog.models import Tag

    Through = Tag.regions.through
    tags = []
    for i in range(start, start + count):
        brand = brands[i % len(brands)]
        category = categories[i % len(categories)]
        tags.append(
            Tag(
                code=f"{brand.business_line.code}_{category.code}_tag_{i}",
                name=f"标签{i}号 到店次数",
                name_en=f"Tag {i} store visits",
                description=f"第{i}个标签的描述",
                category=category,
                business_line=brand.business_line,
                brand=brand,
                owner=owner,
                kind=["system", "behavior", "algorithm", "composite", "manual"][i % 5],
                value_type="boolean",
                definition={"type": "manual"},
            )
        )
    created = Tag.objects.bulk_create(tags, batch_size=1000)
    Through.objects.bulk_create(
        [Through(tag_id=t.pk, region_id=regions[i % len(regions)].pk) for i, t in enumerate(created)],
        batch_size=1000,
    )


def measure(client, url, repeat):
    """Queries of one load and the median of ``repeat`` loads, after a warm-up load (the
    first request of a session also loads its permissions)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    count = len(queries)  # read now: the next request resets the query log
    timings = harness.repeat(lambda: client.get(url), repeat, warmups=0)
    return {"queries": count, "median_ms": round(harness.median(timings) * 1000, 1)}


def run(args):
    from django.test import Client

    from tagportal.catalog.models import Brand, BusinessLine, Category, NamingRule, Region, Tag
    from tagportal.catalog.services import grant_business_line
    from tagportal.core.models import User
    from tagportal.core.roles import ensure_roles

    groups = ensure_roles()
    lines = [
        BusinessLine.objects.create(code=c, name=n) for c, n in [("yimei", "医美"), ("shipin", "食品饮料")]
    ]
    brands = [
        Brand.objects.create(code=f"brand{i}", name=f"品牌{i}", business_line=lines[i % 2]) for i in range(6)
    ]
    rule = NamingRule.objects.create(name="bench")
    root = Category.objects.create(code="root", name="根", naming_rule=rule)
    categories = [Category.objects.create(code=f"c{i}", name=f"分类{i}", parent=root) for i in range(12)]
    china = Region.objects.create(code="cn", name="中国", level="country")
    regions = [
        Region.objects.create(code=f"p{i}", name=f"省{i}", level="province", parent=china) for i in range(8)
    ]
    admin = User.objects.create_user("bench_admin", password="x", is_staff=True)
    admin.groups.add(groups["admin"])
    operator = User.objects.create_user("bench_operator", password="x", is_staff=True)
    operator.groups.add(groups["operator"])
    grant_business_line(operator, lines[0], "operators")

    urls = {
        "plain": "/admin/catalog/tag/",
        "search_zh": "/admin/catalog/tag/?q=到店",
        "filtered": f"/admin/catalog/tag/?kind__exact=behavior&business_line__id__exact={lines[0].pk}"
        f"&regions__id__exact={regions[1].pk}&category={root.pk}",
    }
    clients = {}
    for name, user in (("admin", admin), ("operator", operator)):
        client = Client()
        client.force_login(user)
        clients[name] = client

    fill(args.baseline, brands, categories, regions, admin, 0)
    baseline = {
        f"{who}/{view}": measure(client, url, args.repeat)
        for who, client in clients.items()
        for view, url in urls.items()
    }
    fill(args.tags - args.baseline, brands, categories, regions, admin, args.baseline)
    total = Tag.objects.count()
    large = {
        f"{who}/{view}": measure(client, url, args.repeat)
        for who, client in clients.items()
        for view, url in urls.items()
    }
    constant = all(baseline[k]["queries"] == large[k]["queries"] for k in baseline)
    return {
        "benchmark": "admin tag changelist",
        "baseline_tags": args.baseline,
        "tags": total,
        "baseline": baseline,
        "large": large,
        "constant_queries": constant,
    }


if __name__ == "__main__":
    main()
