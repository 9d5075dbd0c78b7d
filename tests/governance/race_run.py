"""Run by tests/governance/test_races.py in a subprocess: two stewards approve-and-apply
the same change request at the same moment, ``ROUNDS`` times, on a file SQLite database
opened as the settings open it (busy timeout, IMMEDIATE transactions, WAL).

Prints one JSON line: the status codes of each round, the approvals and versions recorded."""

from __future__ import annotations

import json
import os
import sys
import threading

import django

ROUNDS = int(os.environ.get("RACE_ROUNDS", "20"))


def decide(pk: int, user, barrier, codes: dict, key: str) -> None:
    """One steward's approve-and-apply, sent when both are ready."""
    from django.db import connections
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    barrier.wait()
    try:
        response = client.post(
            f"/api/governance/change-requests/{pk}/approve/", {"reason": "同意", "apply": True}, format="json"
        )
        codes[key] = response.status_code
    except Exception as exc:  # a server error raised through the test client
        codes[key] = repr(exc)
    finally:
        connections.close_all()


def main(path: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tagportal.settings_test"
    from django.conf import settings

    django.setup()
    from django.db import connections

    settings.ALLOWED_HOSTS = ["testserver"]
    settings.DATABASES["default"]["NAME"] = path
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = path
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)

    from tagportal.catalog.models import TagVersion
    from tagportal.catalog.services import publish_tag
    from tagportal.core.roles import STEWARD
    from tagportal.governance import services as gov
    from tagportal.governance.choices import AuditAction
    from tagportal.governance.models import AuditEvent
    from tests.conftest import make_world
    from tests.factories import UserFactory

    w = make_world()
    steward2 = UserFactory(username="st2", role=STEWARD, grants=[(w.own_line, "stewards")])
    publish_tag(w.own_tag)
    rounds = []
    for n in range(ROUNDS):
        tag = type(w.own_tag).objects.get(pk=w.own_tag.pk)
        spec = gov.ItemSpec("update", tag, {"description": f"第 {n} 轮"})
        cr = gov.propose(w.operator, [spec], submit_now=True)
        barrier = threading.Barrier(2)
        codes = {}
        threads = [
            threading.Thread(target=decide, args=(cr.pk, user, barrier, codes, key))
            for key, user in (("a", w.steward), ("b", steward2))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rounds.append(
            {
                "codes": sorted(codes.values(), key=str),
                "approvals": AuditEvent.objects.filter(
                    change_request=cr, action=AuditAction.APPROVED
                ).count(),
                "applied": AuditEvent.objects.filter(change_request=cr, action=AuditAction.APPLIED).count(),
            }
        )
    versions = TagVersion.objects.filter(tag=w.own_tag).count()
    options = connections["default"].settings_dict["OPTIONS"]
    print(
        json.dumps(
            {"rounds": rounds, "versions": versions, "transaction_mode": options.get("transaction_mode")}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
