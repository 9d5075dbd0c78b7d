import pytest
from django.test import Client
from django.db import connection
from django.test.utils import CaptureQueriesContext
from tagportal.catalog.models import Tag, Category, Region
from tests.factories import CategoryFactory, RegionFactory, UserFactory

def build(world, n, cats, regions):
    tags = []
    base = Tag.objects.count()
    for i in range(n):
        cat = cats[i % len(cats)]
        tags.append(Tag(brand=world.own_brand, business_line=world.own_line, category=cat,
            name=f"标签{base+i}", code=f"yimei_{cat.code}_t_{base+i}", kind="behavior", value_type="boolean",
            owner=world.operator if i % 2 else world.steward, template="medical_aesthetics" if i%3==0 else ""))
    objs = Tag.objects.bulk_create(tags)
    through = Tag.regions.through
    through.objects.bulk_create([through(tag_id=t.pk, region_id=regions[j % len(regions)].pk) for j, t in enumerate(objs) if j % 2 == 0])

@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("who", ["admin", "operator"])
def test_probe(world, depth, who):
    cats = []
    parent = None
    for d in range(depth):
        parent = CategoryFactory(code=f"lvl{d}", parent=parent, naming_rule=None if d else world.category.naming_rule)
        cats.append(parent)
    regions = [RegionFactory(code="cn", name="中国")]
    c = Client()
    c.force_login(getattr(world, who))
    counts = []
    for n in (5, 45):
        build(world, n, cats, regions)
        c.get("/admin/catalog/tag/")
        with CaptureQueriesContext(connection) as ctx:
            r = c.get("/admin/catalog/tag/")
        assert r.status_code == 200
        counts.append(len(ctx.captured_queries))
        print(Tag.objects.count(), r.context["cl"].result_count)
    print(who, depth, counts)
    if counts[0] != counts[1]:
        for q in ctx.captured_queries[-60:]:
            pass
