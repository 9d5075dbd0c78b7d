"""Models that moved between apps keep their data on upgrade: usage counters (engine ->
usage) and inbox messages (governance -> notifications), with their content types
(hence permissions and grants) and the periodic task that folds usage."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [
    ("engine", "0004_usage_buffer"),
    ("governance", "0003_changeitem_impact"),
    ("usage", None),
    ("notifications", None),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(
        [t for t in targets if t[1] is not None] or executor.loader.graph.leaf_nodes()
    ).apps


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_usage_and_inbox_keep_their_rows_and_permissions_when_their_apps_change():
    old = migrate(BEFORE)
    ContentType = old.get_model("contenttypes", "ContentType")
    Permission = old.get_model("auth", "Permission")
    User = old.get_model("core", "User")
    BusinessLine = old.get_model("catalog", "BusinessLine")
    Brand = old.get_model("catalog", "Brand")
    Category = old.get_model("catalog", "Category")
    Tag = old.get_model("catalog", "Tag")
    ChangeRequest = old.get_model("governance", "ChangeRequest")
    PeriodicTask = old.get_model("django_celery_beat", "PeriodicTask")

    usage_type, _ = ContentType.objects.get_or_create(app_label="engine", model="tagusage")
    view_usage, _ = Permission.objects.get_or_create(
        content_type=usage_type, codename="view_tagusage", defaults={"name": "Can view tag usage"}
    )
    user = User.objects.create(username="old-steward")
    user.user_permissions.add(view_usage)
    line = BusinessLine.objects.create(code="yimei", name="医美")
    brand = Brand.objects.create(code="ruiyan", name="瑞颜", business_line=line)
    category = Category.objects.create(code="visit", name="到店")
    tag = Tag.objects.create(
        code="yimei_visit_x", name="到店次数", brand=brand, business_line=line, category=category,
        kind="behavior", value_type="boolean", refresh_mode="batch", status="draft",
    )  # fmt: skip
    day = dt.date(2026, 12, 1)
    old.get_model("engine", "TagUsage").objects.create(tag=tag, day=day, kind="api_read", client=7, count=5)
    old.get_model("engine", "UsageBuffer").objects.create(
        tag_id=tag.pk, kind="export", client=7, at=timezone.now()
    )
    cr = ChangeRequest.objects.create(business_line=line, brand=brand, proposer=user, title="旧的变更")
    old.get_model("governance", "Notification").objects.create(
        recipient=user, change_request=cr, subject="待审核"
    )
    PeriodicTask.objects.filter(task="tagportal.usage.tasks.aggregate_usage").update(
        task="tagportal.governance.tasks.aggregate_usage"
    )

    new = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    TagUsage = new.get_model("usage", "TagUsage")
    assert list(TagUsage.objects.values_list("tag_id", "day", "kind", "client", "count")) == [
        (tag.pk, day, "api_read", 7, 5)
    ]
    assert new.get_model("usage", "UsageBuffer").objects.get().kind == "export"
    note = new.get_model("notifications", "Notification").objects.get()
    assert (note.subject, note.topic_id, note.topic_type.model) == ("待审核", cr.pk, "changerequest")
    # the permission (and whoever holds it) moved with the model
    moved = new.get_model("auth", "Permission").objects.get(pk=view_usage.pk)
    assert moved.content_type.app_label == "usage"
    assert new.get_model("core", "User").objects.get(pk=user.pk).user_permissions.filter(pk=moved.pk).exists()
    tasks = set(new.get_model("django_celery_beat", "PeriodicTask").objects.values_list("task", flat=True))
    assert "tagportal.usage.tasks.aggregate_usage" in tasks
    assert "tagportal.governance.tasks.aggregate_usage" not in tasks
