import yaml
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import translation

from tagportal.demo.catalog import FIXTURES, bootstrap_demo


class Command(BaseCommand):
    help = (
        "Create the demo business lines, brands, templates, one user per role, data sources and a few "
        "change requests; print the logins. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-templates", action="store_true", help="do not apply industry templates")
        parser.add_argument(
            "--people",
            type=int,
            default=None,
            help="demo people per brand (default: demo_people in demo.yaml)",
        )
        parser.add_argument(
            "--no-models",
            action="store_true",
            help="do not fit the algorithm models after the tags are computed (quicker; for tests)",
        )

    def handle(self, *args, no_templates=False, people=None, no_models=False, **options):
        self.people = people
        self.models = not no_models
        with translation.override(settings.LANGUAGE_CODE):  # demo content in the portal's language
            logins = self._bootstrap(no_templates)
        self.stdout.write("")
        self.stdout.write("Demo logins (local demo only):")
        self.stdout.write(f"  {'username':<10} {'password':<22} role")
        for login in logins:
            self.stdout.write(
                f"  {login.username:<10} {login.password:<22} {login.role}  {login.display_name}"
            )
            if login.token:
                self.stdout.write(f"  {'':<10} API token: {login.token}")
        self.stdout.write("")

    def _bootstrap(self, no_templates):
        logins = bootstrap_demo(templates=not no_templates)
        spec = yaml.safe_load((FIXTURES / "demo.yaml").read_text(encoding="utf-8"))
        from tagportal.demo.lineage import load_demo_sources

        load_demo_sources(spec.get("data_sources", []))
        if not no_templates:
            from tagportal.demo import governance as demo

            demo.load_demo_requests(spec.get("change_requests", {}))
            demo.load_demo_duplicates(spec.get("duplicates", []))
            self._profiles_and_tags(spec)
            self._audiences(spec)
            self._channels()
            self._journeys()
            self._usage_and_reports(demo)
        return logins

    def _audiences(self, spec):
        from tagportal.demo.audiences import load_demo_audiences

        made = load_demo_audiences(spec.get("audiences", []))
        for audience in made:
            self.stdout.write(f"audience {audience.name}: {audience.size} people")

    def _channels(self):
        from tagportal.demo.activation import load_demo_channels

        made = load_demo_channels()
        if made["accounts"]:
            self.stdout.write(
                f"channels: {made['accounts']} demo accounts, {made['deliveries']} past deliveries"
            )

    def _journeys(self):
        from tagportal.demo.journeys import load_demo_journeys

        made = load_demo_journeys()
        if made:
            names = "、".join(f"{j.brand.name} {j.name}" for j in made)
            self.stdout.write(f"journeys: {len(made)} live demo journeys ({names}); page: /journeys/")

    def _usage_and_reports(self, demo):
        """Backdated tag history and 120 days of usage, then every report, so the cleanup
        dashboard shows findings."""
        from tagportal.governance.models import Report

        demo.backdate_demo_tags()
        rows = demo.load_demo_usage()
        if Report.objects.exists():  # run before
            return
        reports = demo.run_demo_reports()
        done = sum(1 for r in reports if r.status == "success")
        seconds = sum(r.duration_s or 0 for r in reports)
        self.stdout.write(
            f"usage: {rows} daily counters; reports: {done}/{len(reports)} built in {seconds:.1f} s"
        )

    def _profiles_and_tags(self, spec):
        """Demo people, events and orders for each brand (deterministic), then compute every
        published tag on them so the dictionary shows coverage and distributions, then fit
        and score the brand's algorithm models (unless ``--no-models``)."""
        from tagportal.catalog.models import Brand
        from tagportal.engine.services import compute_brand
        from tagportal.profiles.generator import load_demo
        from tagportal.profiles.models import Customer

        people = self.people or int(spec.get("demo_people", 1000))
        for item in spec["brands"]:
            brand = Brand.objects.get(code=item["code"])
            if Customer.objects.filter(brand=brand).exists():  # run before: people and tags are there
                continue
            load_demo(brand, people=people, seed=1, industry=item.get("template"))
            report = compute_brand(brand)
            ok = sum(1 for run in report.runs if run.status == "success")
            self.stdout.write(
                f"{brand.code}: {report.population} people, {ok}/{len(report.runs)} tags computed "
                f"in {report.seconds:.1f} s"
            )
            if self.models:
                self._models(brand)

    def _models(self, brand):
        from tagportal.demo.algorithms import run_demo_models

        for run in run_demo_models(brand):
            metric = f", AUC {run.key_metric:.3f}" if run.key_metric is not None else ""
            note = f" ({run.error})" if run.error else ""
            self.stdout.write(
                f"{brand.code}: model {run.model.name}: {run.status}{metric}, "
                f"{run.people_scored or 0} people in {run.duration_s or 0:.1f} s{note}"
            )
