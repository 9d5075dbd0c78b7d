"""Demo change requests (``fixtures/demo.yaml``): one applied, one waiting for review,
one deprecation whose dependents were confirmed. Created once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from tagportal.catalog.models import Tag, TagVersion
from tagportal.governance import services
from tagportal.governance.choices import ChangeKind
from tagportal.governance.models import ChangeRequest


@transaction.atomic
def load_demo_requests(spec: dict) -> int:
    if ChangeRequest.objects.exists():
        return 0
    users = {u.username: u for u in get_user_model().objects.all()}
    made = 0

    def tag(item):
        return Tag.objects.get(brand__code=item["brand"], code=item["tag"])

    for item in spec.get("applied", []):
        cr = services.propose(
            users[item["proposer"]],
            [services.ItemSpec(ChangeKind.UPDATE, tag(item), changes=item["changes"])],
            submit_now=True,
        )
        services.approve(users[item["reviewer"]], cr, "描述更准确", apply_now=True)
        made += 1
    for item in spec.get("submitted", []):
        services.propose(
            users[item["proposer"]],
            [services.ItemSpec(ChangeKind.UPDATE, tag(item), changes=item["changes"])],
            submit_now=True,
        )
        made += 1
    for item in spec.get("deprecate", []):
        services.propose(
            users[item["proposer"]],
            [services.ItemSpec(ChangeKind.DEPRECATE, tag(item))],
            submit_now=True,
            confirm_dependents=item.get("confirm", False),
            description="大促标签已由“主要节日偏好”覆盖",
        )
        made += 1
    return made


# ---------------------------------------------------------------------------
# Demo duplicates, usage history and reports, so the cleanup dashboard has findings


def load_demo_duplicates(spec: list[dict]) -> int:
    """Copies of template tags under another code and name (``fixtures/demo.yaml``
    ``duplicates``): what the merge report should find. Created once."""
    from tagportal.catalog.services import create_tag, publish_tag

    made = 0
    for item in spec:
        original = Tag.objects.filter(brand__code=item["brand"], code=item["tag"]).first()
        if original is None or Tag.objects.filter(brand=original.brand, code=item["code"]).exists():
            continue
        with transaction.atomic():
            copy = create_tag(
                None,
                regions=list(original.regions.all()),
                reason="demo",
                code=item["code"],
                name=item["name"],
                name_en=item.get("name_en", ""),
                description=item.get("description", original.description),
                category=original.category,
                brand=original.brand,
                business_line=original.business_line,
                owner=get_user_model().objects.filter(username=item.get("owner", "operator")).first(),
                kind=original.kind,
                value_type=original.value_type,
                values=original.values,
                unit=original.unit,
                refresh_mode=original.refresh_mode,
                schedule=original.schedule,
                definition=original.definition,
            )
            publish_tag(copy, note="demo")
        made += 1
    return made


#: Usage profiles of demo tags: (share of tags, mean daily API reads, mean daily page views, falling).
USAGE_PROFILES = [
    ("busy", 0.35, 60.0, 3.0, False),
    ("steady", 0.30, 6.0, 0.5, False),
    ("falling", 0.15, 25.0, 1.0, True),
    ("unused", 0.20, 0.0, 0.0, False),
]


def _profile(code: str, brand_code: str):
    import zlib

    point = (zlib.crc32(f"{brand_code}/{code}".encode()) % 1000) / 1000
    edge = 0.0
    for profile in USAGE_PROFILES:
        edge += profile[1]
        if point < edge:
            return profile
    return USAGE_PROFILES[-1]


def load_demo_usage(days: int = 120, seed: int = 1) -> int:
    """``days`` of deterministic usage history ending yesterday (Beijing) for every
    published tag: API reads by the CRM service account, tag API reads and page views
    by the operator and the steward. Tags fall into busy / steady / falling / unused
    profiles by a hash of their code, so the reports have something to say. Skipped when
    usage is already recorded."""
    import datetime as dt

    import numpy as np

    from tagportal.catalog.choices import TagStatus
    from tagportal.core.days import beijing_today
    from tagportal.usage.choices import UsageKind
    from tagportal.usage.models import TagUsage
    from tagportal.usage.services import add_rows

    if TagUsage.objects.exists():
        return 0
    users = {
        u.username: u.pk
        for u in get_user_model().objects.filter(username__in=["crm_sync", "operator", "steward"])
    }
    if len(users) < 3:
        return 0
    rng = np.random.default_rng(seed)
    end = beijing_today() - dt.timedelta(days=1)
    rows = []
    tags = (
        Tag.objects.filter(status=TagStatus.PUBLISHED).select_related("brand").order_by("brand__code", "code")
    )
    for tag in tags:
        _name, _share, reads, views, falling = _profile(tag.code, tag.brand.code)
        if reads == 0 and views == 0:
            continue
        for back in range(days):
            day = end - dt.timedelta(days=back)
            scale = 1.0
            if falling:
                scale = 1.0 if back >= 45 else 0.05
            weekday = 0.6 if day.weekday() >= 5 else 1.0
            for kind, client, mean in (
                (UsageKind.API_READ, users["crm_sync"], reads * scale * weekday),
                (UsageKind.TAG_READ, users["crm_sync"], reads * scale * weekday / 20),
                (UsageKind.PAGE_VIEW, users["operator"], views * scale * weekday),
                (UsageKind.PAGE_VIEW, users["steward"], views * scale * weekday / 3),
            ):
                n = int(rng.poisson(mean)) if mean > 0 else 0
                if n:
                    rows.append((tag.pk, day, str(kind), client, n))
    add_rows(rows)
    return len(rows)


def backdate_demo_tags(days: int = 180) -> int:
    """Spread the demo tags' creation and first publication over the last ``days`` days
    (deterministically), so the activity chart shows a history rather than one bar and
    the cold-tag report sees tags past their grace period. Only tags created today."""
    import datetime as dt
    import zlib

    from django.utils import timezone

    today = timezone.now()
    moved = 0
    start_of_day = today.replace(hour=0, minute=0, second=0, microsecond=0)
    for tag in Tag.objects.filter(created__gte=start_of_day).only("pk", "code", "brand_id"):
        offset = zlib.crc32(f"{tag.brand_id}/{tag.code}".encode()) % days
        created = today - dt.timedelta(days=offset + 1)
        Tag.objects.filter(pk=tag.pk).update(created=created)
        Tag.history.filter(id=tag.pk, history_type="+").update(history_date=created)
        TagVersion.objects.filter(tag_id=tag.pk, version=1).update(published_at=created)
        moved += 1
    return moved


def run_demo_reports() -> list:
    """Every kind of report for each business line and for all of them, over the usual
    period ending yesterday, plus last week's cold-tag reports (to compare against)."""
    import datetime as dt

    from tagportal.core.days import beijing_today
    from tagportal.governance.choices import ReportKind, ReportTrigger
    from tagportal.governance.reports import service

    week_ago = beijing_today() - dt.timedelta(days=8)
    reports = [
        service.request_report(
            None, ReportKind.COLD, trigger=ReportTrigger.SCHEDULE, run_now=True, end=week_ago
        )
    ]
    return reports + service.schedule_all()
