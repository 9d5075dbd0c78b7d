# The usage counters, moved from the engine app: engine.0005 renamed their tables, so
# the models are created in state only.

import django.db.models.deletion
from django.db import migrations, models

KINDS = [
    ('api_read', 'Profile API read'), ('tag_read', 'Tag API read'), ('audience', 'Audience'),
    ('journey', 'Journey'), ('export', 'Export'), ('page_view', 'Page view'),
]
OLD_TASK = 'tagportal.governance.tasks.aggregate_usage'
NEW_TASK = 'tagportal.usage.tasks.aggregate_usage'


def rename_task(apps, schema_editor):
    PeriodicTask = apps.get_model('django_celery_beat', 'PeriodicTask')
    PeriodicTask.objects.filter(task=OLD_TASK).update(task=NEW_TASK)


def unrename_task(apps, schema_editor):
    PeriodicTask = apps.get_model('django_celery_beat', 'PeriodicTask')
    PeriodicTask.objects.filter(task=NEW_TASK).update(task=OLD_TASK)


def create_schedules(apps, schema_editor):
    from tagportal.core.schedules import ensure_crontab_tasks
    from tagportal.usage.tasks import DEFAULT_SCHEDULES

    ensure_crontab_tasks(
        DEFAULT_SCHEDULES,
        apps.get_model('django_celery_beat', 'PeriodicTask'),
        apps.get_model('django_celery_beat', 'CrontabSchedule'),
    )


def move_content_types(apps, schema_editor):
    """Permissions and grants on the models stay attached: their content types move too."""
    ContentType = apps.get_model('contenttypes', 'ContentType')
    ContentType.objects.filter(app_label='engine', model__in=['tagusage', 'usagebuffer']).update(app_label='usage')


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    ContentType.objects.filter(app_label='usage', model__in=['tagusage', 'usagebuffer']).update(app_label='engine')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('catalog', '0003_governance_fields'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
        ('engine', '0005_usage_moves_to_its_app'),
        ('governance', '0002_report'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='TagUsage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('day', models.DateField(help_text='Beijing date.', verbose_name='day')),
                        ('kind', models.CharField(choices=KINDS, max_length=20, verbose_name='kind')),
                        ('client', models.PositiveBigIntegerField(help_text='The id of the user or service account that used the tag.', verbose_name='client')),
                        ('count', models.PositiveBigIntegerField(default=0, verbose_name='uses')),
                        ('tag', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_counts', to='catalog.tag', verbose_name='tag')),
                    ],
                    options={
                        'verbose_name': 'tag usage',
                        'verbose_name_plural': 'tag usage',
                        'ordering': ['-day', 'tag_id', 'kind', 'client'],
                        'indexes': [models.Index(fields=['day', 'kind'], name='tag_usage_day_kind')],
                        'constraints': [
                            models.UniqueConstraint(fields=('tag', 'day', 'kind', 'client'), name='tag_usage_unique'),
                            models.CheckConstraint(condition=models.Q(('kind__in', [k for k, _ in KINDS])), name='tag_usage_kind_valid'),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name='UsageBuffer',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('tag_id', models.PositiveBigIntegerField(verbose_name='tag')),
                        ('kind', models.CharField(choices=KINDS, max_length=20, verbose_name='kind')),
                        ('client', models.PositiveBigIntegerField(verbose_name='client')),
                        ('count', models.PositiveBigIntegerField(default=1, verbose_name='uses')),
                        ('at', models.DateTimeField(verbose_name='time')),
                    ],
                    options={
                        'verbose_name': 'buffered tag use',
                        'verbose_name_plural': 'buffered tag uses',
                    },
                ),
            ],
        ),
        migrations.RunPython(rename_task, unrename_task),
        migrations.RunPython(create_schedules, migrations.RunPython.noop),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
