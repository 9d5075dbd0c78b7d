# The usage counters move to the usage app: the tables are renamed here and the
# models are created (in state only) by usage.0001_initial.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('engine', '0004_usage_buffer'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='tagusage', table='usage_tagusage'),
                migrations.AlterModelTable(name='usagebuffer', table='usage_usagebuffer'),
            ],
            state_operations=[
                migrations.DeleteModel(name='TagUsage'),
                migrations.DeleteModel(name='UsageBuffer'),
            ],
        ),
    ]
