from django.core.management.base import BaseCommand, CommandError

from tagportal.catalog.templates import TemplateError, available_packs, check_pack


class Command(BaseCommand):
    help = "Check every industry template pack in fixtures/templates (structure, naming, rule documents)."

    def handle(self, *args, **options):
        try:
            packs = available_packs()
        except TemplateError as exc:
            raise CommandError(str(exc)) from exc
        failed = False
        for key, pack in packs.items():
            problems = check_pack(pack)
            kinds = sorted({t.get("kind") for t in pack.tags})
            self.stdout.write(f"{key}: {len(pack.tags)} tags, kinds {kinds}, {len(problems)} problem(s)")
            for problem in problems:
                self.stdout.write(f"  - {problem}")
            failed = failed or bool(problems)
        if failed:
            raise CommandError("template packs have problems")
