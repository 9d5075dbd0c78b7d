"""Demo data sources and fields (``fixtures/demo.yaml``), idempotent."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from tagportal.catalog.models import BusinessLine
from tagportal.lineage.models import DataField, DataSource


@transaction.atomic
def load_demo_sources(spec: list[dict]) -> int:
    users = {u.username: u for u in get_user_model().objects.all()}
    created = 0
    now = timezone.now()
    for item in spec:
        source, made = DataSource.objects.get_or_create(
            code=item["code"],
            defaults={
                "name": item["name"],
                "name_en": item.get("name_en", ""),
                "kind": item["kind"],
                "refresh_sla_hours": item.get("sla", 24),
                "owner": users.get(item.get("owner", "")),
                "business_line": BusinessLine.objects.filter(code=item.get("business_line", "")).first(),
            },
        )
        created += made
        # The demo clock moves on: keep each source as fresh (or as stale) as the file says.
        source.last_loaded_at = now - timedelta(hours=item.get("hours_since_load", 1))
        source.save()
        for name, data_type, maps_to in item.get("fields", []):
            DataField.objects.get_or_create(
                source=source, name=name, defaults={"data_type": data_type, "maps_to": maps_to}
            )
    return created
