from django.core.management.base import BaseCommand

from tagportal.catalog.demo import bootstrap_demo


class Command(BaseCommand):
    help = "Create the demo business lines, brands, templates and one user per role; print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--no-templates", action="store_true", help="do not apply industry templates")

    def handle(self, *args, no_templates=False, **options):
        logins = bootstrap_demo(templates=not no_templates)
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
