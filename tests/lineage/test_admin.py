"""The admin pages of data sources and fields, scoped like everything else."""

import pytest

from tagportal.lineage.models import DataField, DataSource, TagInput

from .conftest import NOW


@pytest.mark.django_db
def test_source_changelist_is_scoped_and_shows_staleness(client, world, lin, now):
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=NOW)
    client.force_login(world.steward)
    response = client.get("/admin/lineage/datasource/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "门店收银" in html and "CRM 会员数据" in html and "天猫旗舰店" not in html
    assert list(response.context["cl"].result_list.order_by("code")) == [lin.crm, lin.pos]
    stale = client.get("/admin/lineage/datasource/", {"stale": "yes"}).context["cl"].result_list
    assert list(stale) == [lin.crm]
    shared = (
        client.get("/admin/lineage/datasource/", {"business_line__isnull": "True"}).context["cl"].result_list
    )
    assert list(shared) == [lin.crm]
    assert list(client.get("/admin/lineage/datasource/", {"kind": "pos"}).context["cl"].result_list) == [
        lin.pos
    ]


@pytest.mark.django_db
def test_other_lines_source_is_not_reachable(client, world, lin):
    client.force_login(world.steward)
    response = client.get(f"/admin/lineage/datasource/{lin.tmall.pk}/change/")
    assert response.status_code in (302, 404)
    assert client.get(f"/admin/lineage/datasource/{lin.pos.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_record_a_load_from_the_admin(client, world, lin, now):
    client.force_login(world.steward)
    response = client.post(
        "/admin/lineage/datasource/",
        {"action": "record_load_action", "_selected_action": [lin.pos.pk]},
        follow=True,
    )
    assert response.status_code == 200
    lin.pos.refresh_from_db()
    assert lin.pos.last_loaded_at == NOW


@pytest.mark.django_db
def test_field_changelist_and_source_inline(client, world, lin):
    client.force_login(world.steward)
    response = client.get("/admin/lineage/datafield/")
    assert response.status_code == 200
    names = {str(f) for f in response.context["cl"].result_list}
    assert names == {"crm.member_level", "crm.points", "yimei-pos.amount", "yimei-pos.visit_type"}
    change = client.get(f"/admin/lineage/datasource/{lin.pos.pk}/change/")
    assert "visit_type" in change.content.decode()


@pytest.mark.django_db
def test_deleting_from_the_admin_lists_what_goes_with_it(client, world, lin):
    client.force_login(world.steward)
    url = f"/admin/lineage/datafield/{lin.visit_type.pk}/delete/"
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "tag input" in confirm.content.decode().lower()
    client.post(url, {"post": "yes"})
    assert not DataField.objects.filter(pk=lin.visit_type.pk).exists()
    assert not TagInput.objects.filter(tag=world.own_tag).exists()


@pytest.mark.django_db
def test_stewards_cannot_create_shared_sources_in_the_admin(client, world, lin):
    client.force_login(world.steward)
    response = client.post(
        "/admin/lineage/datasource/add/",
        {
            "code": "group-crm",
            "name": "集团",
            "kind": "crm",
            "refresh_sla_hours": 24,
            "is_active": "on",
            "fields-TOTAL_FORMS": 0,
            "fields-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form answers: a business line is required
    assert not DataSource.objects.filter(code="group-crm").exists()
    response = client.post(
        "/admin/lineage/datasource/add/",
        {
            "code": "yimei-wecom",
            "name": "企微",
            "kind": "wecom",
            "business_line": world.own_line.pk,
            "refresh_sla_hours": 24,
            "is_active": "on",
            "fields-TOTAL_FORMS": 1,
            "fields-INITIAL_FORMS": 0,
            "fields-0-name": "external_userid",
            "fields-0-data_type": "string",
            "fields-0-maps_to": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    source = DataSource.objects.get(code="yimei-wecom")
    assert source.owner == world.steward
    assert list(source.fields.values_list("name", flat=True)) == ["external_userid"]
