from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tagportal.governance.choices import ReportKind, ReportTrigger
from tagportal.governance.reports import service


class Command(BaseCommand):
    help = (
        "Build usage, cold-tag, merge-suggestion and activity reports (all kinds unless --kind), "
        "for every tag or one business line / brand / region, over a period of Beijing days "
        "(default: each kind's usual period ending yesterday). Running a report again for the same "
        "parameters rewrites it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", action="append", choices=ReportKind.values, help="repeatable")
        parser.add_argument("--start", help="first day, YYYY-MM-DD")
        parser.add_argument("--end", help="last day, YYYY-MM-DD (default yesterday)")
        parser.add_argument("--business-line", help="business line code")
        parser.add_argument("--brand", help="brand code")
        parser.add_argument("--region", help="region code")
        parser.add_argument(
            "--every-line", action="store_true", help="one report per business line, plus one for all"
        )
        parser.add_argument("--enqueue", action="store_true", help="hand the reports to Celery workers")

    def handle(self, *args, kind=None, start=None, end=None, every_line=False, enqueue=False, **options):
        kinds = kind or list(ReportKind.values)
        try:
            if every_line:
                reports = service.schedule_all(kinds)
            else:
                reports = [
                    service.request_report(
                        None,
                        k,
                        trigger=ReportTrigger.COMMAND,
                        run_now=not enqueue,
                        start=start,
                        end=end,
                        business_line=options.get("business_line"),
                        brand=options.get("brand"),
                        region=options.get("region"),
                    )
                    for k in kinds
                ]
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        for report in reports:
            report.refresh_from_db()
            scope = report.params.get("business_line") or "all"
            self.stdout.write(
                f"{report.kind:<9} #{report.pk} {scope:<10} {report.period_start}..{report.period_end} "
                f"{report.status}: {report.row_count} findings in {report.duration_s or 0:.2f} s"
                + (f" ({report.error})" if report.error else "")
            )
