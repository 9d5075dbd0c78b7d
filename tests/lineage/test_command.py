from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tagportal.lineage.models import DataSource, TagInput

from .conftest import NOW


@pytest.mark.django_db
def test_check_lineage_syncs_and_lists_stale_sources(world, lin, now):
    TagInput.objects.all().delete()
    DataSource.objects.exclude(pk=lin.pos.pk).update(last_loaded_at=NOW)
    out = StringIO()
    call_command("check_lineage", stdout=out)
    text = out.getvalue()
    assert "1 inputs added" in text
    assert "STALE yimei-pos" in text and "never been loaded" in text
    assert world.own_tag.code in text
    assert TagInput.objects.filter(tag=world.own_tag, field=lin.visit_type).exists()
    with pytest.raises(CommandError):
        call_command("check_lineage", "--no-sync", "--fail-on-stale", stdout=StringIO())
