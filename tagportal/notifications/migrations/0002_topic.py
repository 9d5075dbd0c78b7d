# What a message is about becomes a generic reference (any app may notify); the change
# request of existing messages is carried over.

import django.db.models.deletion
from django.db import migrations, models


def carry_over(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    Notification = apps.get_model('notifications', 'Notification')
    if not Notification.objects.filter(change_request__isnull=False).exists():
        return
    kind, _created = ContentType.objects.get_or_create(app_label='governance', model='changerequest')
    for note in Notification.objects.filter(change_request__isnull=False).only('pk', 'change_request_id').iterator():
        Notification.objects.filter(pk=note.pk).update(topic_type=kind, topic_id=note.change_request_id)


def carry_back(apps, schema_editor):
    Notification = apps.get_model('notifications', 'Notification')
    ContentType = apps.get_model('contenttypes', 'ContentType')
    kind = ContentType.objects.filter(app_label='governance', model='changerequest').first()
    if kind is None:
        return
    for note in Notification.objects.filter(topic_type=kind).only('pk', 'topic_id').iterator():
        Notification.objects.filter(pk=note.pk).update(change_request_id=note.topic_id)


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='notification',
            name='topic_type',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='contenttypes.contenttype', verbose_name='about'),
        ),
        migrations.AddField(
            model_name='notification',
            name='topic_id',
            field=models.PositiveBigIntegerField(blank=True, null=True, verbose_name='about (id)'),
        ),
        migrations.RunPython(carry_over, carry_back),
        migrations.RemoveField(model_name='notification', name='change_request'),
        migrations.RenameIndex(model_name='notification', new_name='notification_inbox', old_name='governance__recipie_0cf3bc_idx'),
        migrations.AddIndex(
            model_name='notification',
            index=models.Index(fields=['topic_type', 'topic_id'], name='notification_topic'),
        ),
    ]
