from django.core.management.base import BaseCommand, CommandError

from tagportal.catalog.models import Brand
from tagportal.catalog.services import apply_template
from tagportal.catalog.templates import TemplateError, available_packs


class Command(BaseCommand):
    help = "Apply an industry template pack to a brand (idempotent: a second run changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("template", nargs="?", help="template key, e.g. medical_aesthetics")
        parser.add_argument("--brand", help="brand code")
        parser.add_argument("--list", action="store_true", help="list the available templates")

    def handle(self, *args, template=None, brand=None, list=False, **options):
        if list or not template:
            for key, pack in available_packs().items():
                self.stdout.write(f"{key}\t{pack.name} / {pack.name_en}\t{len(pack.tags)} tags")
            return
        if not brand:
            raise CommandError("--brand is required")
        try:
            target = Brand.objects.get(code=brand)
        except Brand.DoesNotExist as exc:
            raise CommandError(f"unknown brand {brand!r}") from exc
        try:
            result = apply_template(target, template)
        except TemplateError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{template} → {target.code}: {len(result.created)} created, {len(result.skipped)} already there, "
            f"{result.categories_created} categories created"
        )
