"""Register the hourly refresh of audiences due on their schedule with django-celery-beat
(editable in the admin)."""

from django.db import migrations


def create_schedules(apps, schema_editor):
    from tagportal.audiences.services import ensure_schedules

    ensure_schedules(
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("audiences", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
