"""Demo audiences (``fixtures/demo.yaml`` ``audiences``), built by the demo operator on
the computed demo tags, one of them live in a journey, plus a lookalike of one. Created once."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from tagportal.audiences import services
from tagportal.audiences.models import Audience
from tagportal.catalog.models import Brand

log = logging.getLogger(__name__)


def load_demo_audiences(spec: list[dict]) -> list[Audience]:
    if Audience.objects.exists():
        return []
    users = {u.username: u for u in get_user_model().objects.all()}
    made = []
    for item in spec:
        brand = Brand.objects.get(code=item["brand"])
        owner = users[item.get("owner", "operator")]
        try:
            audience = services.create_audience(
                owner,
                brand=brand,
                name=item["name"],
                expression=item["expression"],
                description=item.get("description", ""),
                refresh_every_hours=item.get("refresh_every_hours"),
            )
        except ValidationError as exc:  # a template changed under the demo: say so, go on
            log.warning("demo audience %r not created: %s", item["name"], exc.messages)
            continue
        if item.get("live"):
            Audience.objects.filter(pk=audience.pk).update(is_live=True)
        made.append(audience)
        lookalike = item.get("lookalike")
        if lookalike:
            from tagportal.audiences.lookalike import create_lookalike

            try:
                made.append(
                    create_lookalike(owner, audience, size=lookalike["size"], name=lookalike.get("name", ""))
                )
            except ValidationError as exc:
                log.warning("demo lookalike of %r not created: %s", item["name"], exc.messages)
    return made
