from django.core.management.base import BaseCommand

from tagportal.catalog.models import BusinessLine
from tagportal.catalog.services import ensure_business_line_groups
from tagportal.core.roles import ensure_roles


class Command(BaseCommand):
    help = "Create or update the role groups and every business line's grant groups (idempotent)."

    def handle(self, *args, **options):
        groups = ensure_roles()
        for name, group in groups.items():
            self.stdout.write(f"role {name}: {group.permissions.count()} permissions")
        for business_line in BusinessLine.objects.all():
            ensure_business_line_groups(business_line)
            self.stdout.write(f"business line {business_line.code}: groups ready")
