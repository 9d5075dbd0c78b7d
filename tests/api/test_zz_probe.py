import json
from django.db import transaction
from tests.conftest import client_for
from tagportal.catalog.models import Tag


def test_probe(world):
    a = client_for(world.admin)
    for url, data in [("/api/catalog/naming-rules/", {"name": "r2", "pattern": "{name}", "min_length": 10, "max_length": 5}),
                      ("/api/catalog/naming-rules/", {"name": "r3", "pattern": "{name}", "max_length": 80}),
                      ("/api/catalog/categories/", {"code": "visit", "name": "x"}),
                      ]:
        try:
            with transaction.atomic():
                r = a.post(url, data, format="json")
                print(url, data, r.status_code, r.content.decode())
        except Exception as e:
            print("EXC", e)
    with transaction.atomic():
        r = a.patch(f"/api/catalog/categories/{world.category.pk}/", {"parent": world.category.pk}, format="json")
        print("cat self", r.status_code, r.content.decode())
        transaction.set_rollback(True)
    r = a.post("/api/catalog/versions/", {}, format="json")
    print("ver", r.status_code)
    c = client_for(world.steward)
    r = c.post("/api/catalog/versions/", {}, format="json")
    print("ver st", r.status_code)
    from rest_framework.test import APIClient
    r = APIClient().get("/api/catalog/tags/")
    print("anon", r.status_code, r.headers.get("WWW-Authenticate"))
    r = APIClient().get("/api/docs/")
    print(r.status_code, r.content.decode())
    r = APIClient().get("/api/schema/?format=json")
    print(r.status_code, r.headers["Content-Type"], list(json.loads(r.content)["paths"])[:40])
    r = APIClient().get("/api/schema/")
    print(r.status_code, r.headers["Content-Type"])
