from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.engine.services import DEFAULT_SCHEDULES, ensure_default_schedules


class Command(BaseCommand):
    help = gettext_lazy(
        "Register the engine's periodic tasks with django-celery-beat (compute due tags, reset hung "
        "computations). Existing entries, possibly edited in the admin, are left alone."
    )

    def handle(self, *args, **options):
        created = ensure_default_schedules()
        for entry in DEFAULT_SCHEDULES:
            state = _("created") if entry["name"] in created else _("already there")
            self.stdout.write(f"{entry['name']}: {state}")
