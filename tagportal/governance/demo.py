"""Demo change requests (``fixtures/demo.yaml``): one applied, one waiting for review,
one deprecation whose dependents were confirmed. Created once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from tagportal.catalog.models import Tag

from . import services
from .choices import ChangeKind
from .models import ChangeRequest


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
