from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.core.claims import reap


class Command(BaseCommand):
    help = gettext_lazy(
        "Record the work of dead workers (claims without a recent heartbeat) as abandoned and queue it "
        "again, as the periodic reaper does."
    )

    def handle(self, *args, **options):
        reaped = reap()
        for key in reaped:
            self.stdout.write(key)
        self.stdout.write(_("%(n)s abandoned claims reaped.") % {"n": len(reaped)})
