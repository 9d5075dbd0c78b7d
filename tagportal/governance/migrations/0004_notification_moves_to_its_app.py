# The inbox moves to the notifications app: the table is renamed here and the model
# is created (in state only) by notifications.0001_initial.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0003_changeitem_impact'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='notification', table='notifications_notification'),
            ],
            state_operations=[
                migrations.DeleteModel(name='Notification'),
            ],
        ),
    ]
