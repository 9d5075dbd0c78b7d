"""Per-variant counts of a send node, read from the deliveries of the sends whose context
names it, and from the conversions attributed to it."""

import pytest
from django.utils import timezone

from tagportal.activation.models import Delivery, Send
from tagportal.journeys import variants
from tagportal.journeys.models import Conversion, Journey, JourneyInstance, JourneyVersion
from tagportal.journeys.variants import VariantStats
from tests.activation.helpers import account

pytestmark = pytest.mark.django_db


def _send(acc, journey, node, variant, states):
    send = Send.objects.create(
        brand=acc.brand,
        account=acc,
        kind=acc.kind,
        content={},
        context={"journey": journey.pk, "version": 1, "node": node, "variant": variant, "topic": "新品"},
    )
    Delivery.objects.bulk_create(
        Delivery(
            send=send,
            oneid=i + 1,
            recipient=f"wm-{i}",
            idempotency_key=f"{send.pk}:{i}",
            state=state,
            next_attempt_at=timezone.now(),
        )
        for i, state in enumerate(states)
    )
    return send


def test_stats_count_each_variants_deliveries_and_conversions(world):
    acc = account(world.own_brand, "wecom")
    journey = Journey.objects.create(brand=world.own_brand, name="召回")
    other = Journey.objects.create(brand=world.own_brand, name="别的旅程")
    version = JourneyVersion.objects.create(journey=journey, number=1, graph={})
    _send(acc, journey, "n4", "A", ["sent", "delivered", "read", "clicked", "failed", "queued"])
    _send(acc, journey, "n4", "B", ["clicked", "clicked", "sent"])
    _send(acc, journey, "n4", "B", ["delivered"])  # a second batch of the same variant
    _send(acc, journey, "n9", "A", ["clicked"] * 5)  # another node
    _send(acc, other, "n4", "A", ["clicked"] * 5)  # another journey
    Send.objects.create(brand=acc.brand, account=acc, kind=acc.kind, content={})  # no context
    now = timezone.now()
    for oneid, variant in ((1, "B"), (2, "B"), (3, "A")):
        instance = JourneyInstance.objects.create(
            journey=journey, version=version, brand=world.own_brand, oneid=oneid, node="n6", entered_at=now
        )
        Conversion.objects.create(
            instance=instance,
            journey=journey,
            at=now,
            kind="event",
            source_id=oneid,
            attributed_node="n4",
            attributed_variant=variant,
        )

    found = variants.stats(journey, "n4")

    assert found == {
        "A": VariantStats(assigned=6, sent=4, delivered=3, read=2, clicked=1, converted=1),
        "B": VariantStats(assigned=4, sent=4, delivered=3, read=2, clicked=2, converted=2),
    }
    assert found["B"].click_rate == 0.5
    assert variants.stats(journey, "n5") == {}
    # what choose reads: the counts as they are
    node = {"id": "n4", "config": {"variants": [{"key": "A"}, {"key": "B"}], "learning": "significance"}}
    assert variants.choose(node, journey, 77, found) in {"A", "B"}
    assert variants.decision(found).state == variants.COLLECTING
