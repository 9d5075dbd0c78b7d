from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from tagportal.lineage import services


class Command(BaseCommand):
    help = (
        "Re-derive every tag's inputs from its definition and every algorithm model's from "
        "its kind, and list stale data sources."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-sync", action="store_true", help="Only list stale sources.")
        parser.add_argument(
            "--fail-on-stale", action="store_true", help="Exit with an error when a source is stale."
        )

    def handle(self, *args, no_sync=False, fail_on_stale=False, **options):
        problems = []
        if not no_sync:
            summary = services.sync_all()
            result = summary.result
            self.stdout.write(
                _(
                    "Synced %(tags)s tags and %(models)s algorithm models: %(created)s inputs added, "
                    "%(deleted)s removed, %(changed)s changed."
                )
                % {
                    "tags": summary.tags,
                    "models": summary.models,
                    "created": result.created,
                    "deleted": result.deleted,
                    "changed": result.changed,
                }
            )
            for problem in summary.problems:
                self.stdout.write(f"  ! {problem}")
            problems = summary.problems
        stale = list(services.stale_sources().order_by("code"))
        if not stale:
            self.stdout.write(_("No stale data sources."))
        for source in stale:
            tags = services.impact(source).tags
            self.stdout.write(
                _("STALE %(code)s: %(reason)s; %(n)s dependent tag(s)")
                % {"code": source.code, "reason": services.stale_reason(source), "n": len(tags)}
            )
            for tag in tags[:50]:
                self.stdout.write(f"    {tag.brand.code}/{tag.code}")
        if problems:
            raise CommandError(_("%(n)s tag(s) could not be synced.") % {"n": len(problems)})
        if stale and fail_on_stale:
            raise CommandError(_("%(n)s data source(s) are stale.") % {"n": len(stale)})
