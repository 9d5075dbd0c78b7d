"""Identity values shown masked keep less: a phone at most its first 3 and last 2
digits (``138******78``, was ``138****5678``), other identifiers about a quarter of
their characters; a masked value never starts with a formula character.

Phones are not stored in clear, so their new mask is cut from the old one (which held
the first 3 and last 4 digits); other identifiers are masked again from their value."""

import re

from django.db import migrations

OLD_PHONE_MASK = re.compile(r"^(\d{3})\*{4}\d{2}(\d{2})$")


def remask(apps, schema_editor):
    from tagportal.profiles.pii import mask

    Identity = apps.get_model("profiles", "Identity")
    changed = []
    rows = Identity.objects.only("pk", "type", "value", "masked").order_by("pk")
    for identity in rows.iterator(chunk_size=5000):
        if identity.type == "phone":
            old = OLD_PHONE_MASK.match(identity.masked)
            new = f"{old[1]}******{old[2]}" if old else "****"
        else:
            new = mask(identity.type, identity.value) if identity.value else "****"
        if new != identity.masked:
            identity.masked = new
            changed.append(identity)
        if len(changed) >= 5000:
            Identity.objects.bulk_update(changed, ["masked"])
            changed = []
    if changed:
        Identity.objects.bulk_update(changed, ["masked"])


class Migration(migrations.Migration):
    dependencies = [("profiles", "0003_identity_lookup")]

    operations = [migrations.RunPython(remask, migrations.RunPython.noop)]
