"""The demo set-up: regions, business lines, brands with their templates, and one
user per role (``fixtures/demo.yaml``). Idempotent; used by ``make run``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from tagportal.catalog.models import Brand, BusinessLine, Region
from tagportal.catalog.services import apply_template, grant_business_line
from tagportal.core.roles import ensure_roles

FIXTURES = Path(settings.BASE_DIR) / "fixtures"


@dataclass
class DemoLogin:
    username: str
    password: str
    role: str
    display_name: str
    token: str | None = None


@transaction.atomic
def load_regions(path: Path = FIXTURES / "regions.yaml") -> int:
    """Create the region tree (existing codes are left alone). Returns how many were created."""
    levels = ["country", "province", "city"]
    created = 0

    def walk(nodes, parent, depth):
        nonlocal created
        for node in nodes:
            region = Region.objects.filter(code=node["code"]).first()
            if region is None:
                region = Region(
                    code=node["code"], name=node["name"], name_en=node.get("name_en", ""),
                    level=levels[depth], parent=parent,
                )  # fmt: skip
                region.full_clean()
                region.save()
                created += 1
            walk(node.get("children", []), region, depth + 1)

    walk(yaml.safe_load(path.read_text(encoding="utf-8")), None, 0)
    return created


@transaction.atomic
def bootstrap_demo(path: Path = FIXTURES / "demo.yaml", templates: bool = True) -> list[DemoLogin]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    ensure_roles()
    load_regions()
    lines = {}
    for item in spec["business_lines"]:
        lines[item["code"]], _ = BusinessLine.objects.get_or_create(
            code=item["code"], defaults={"name": item["name"], "name_en": item.get("name_en", "")}
        )
    brands = []
    for item in spec["brands"]:
        brand, _ = Brand.objects.get_or_create(
            code=item["code"],
            defaults={
                "name": item["name"],
                "name_en": item.get("name_en", ""),
                "business_line": lines[item["business_line"]],
            },
        )
        brands.append((brand, item))
    logins = []
    User = get_user_model()
    for item in spec["users"]:
        user, _ = User.objects.get_or_create(username=item["username"])
        user.display_name = item.get("display_name", "")
        user.is_staff = True
        user.is_service_account = bool(item.get("service_account"))
        user.set_password(item["password"])
        user.save()
        user.groups.add(Group.objects.get(name=item["role"]))
        for code, member in item.get("grants", []):
            grant_business_line(user, lines[code], member)
        token = Token.objects.get_or_create(user=user)[0].key if user.is_service_account else None
        logins.append(DemoLogin(user.username, item["password"], item["role"], user.display_name, token))
    if templates:
        owner = User.objects.get(username="steward")
        for brand, item in brands:
            if item.get("template"):
                regions = list(Region.objects.filter(code__in=item.get("regions", [])))
                apply_template(brand, item["template"], owner=owner, regions=regions)
    return logins
