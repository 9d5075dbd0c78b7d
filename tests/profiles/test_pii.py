"""Personal data: phone numbers are never stored in clear, anywhere; identity values
are masked for users without the PII permission."""

import pytest
from django.db import IntegrityError, connection, transaction

from tagportal.profiles import generator, imports, pii, services
from tagportal.profiles.models import Customer, Identity

from .conftest import EVENTS_CSV, PHONE, csv_upload, links

pytestmark = pytest.mark.django_db


def database_text() -> str:
    """Every row of every table, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_phones_are_never_stored_in_clear(world, django_capture_on_commit_callbacks):
    brand = world.own_brand
    imports.import_file(brand, "events", csv_upload(EVENTS_CSV))
    imports.import_file(
        brand, "customers", csv_upload(f"phone,wechat_unionid,gender\n{PHONE},oU2,female\n")
    )  # links two people: a merge, with history rows
    imports.import_file(
        brand, "events", csv_upload("client_id,time,type,phone\nx,2024-05-01,nope,13700001111\n")
    )
    generator.load_demo(brand, people=30, seed=5, events_per_person=2)
    demo_phones = Identity.objects.filter(type="phone").count()
    assert demo_phones > 20 and not Identity.objects.filter(type="phone").exclude(value="").exists()
    text = database_text()
    assert "oU1" in text  # other identifiers are kept (shown only with the PII permission)
    for number in (PHONE, "13700001111", PHONE[3:]):
        assert number not in text
    assert "138******78" in text


def test_the_database_refuses_a_phone_in_clear(world):
    services.resolve_identities(world.own_brand, links(("a", "phone", PHONE)))
    with pytest.raises(IntegrityError), transaction.atomic():
        Identity.objects.filter(type="phone").update(value=PHONE)


def test_hash_and_mask():
    assert pii.hash_value("phone", PHONE) != pii.hash_value("crm_member_id", PHONE)
    assert len(pii.hash_value("phone", PHONE)) == 64
    assert pii.mask("phone", PHONE) == "138******78"
    assert pii.mask("wechat_unionid", "oUnion123") == "oU****3"
    assert pii.mask("jd_pin", "abc") == "****"
    assert pii.normalise_one("phone", "+86 138-1234-5678") == (PHONE, None)
    assert pii.normalise_one("phone", "0086 13812345678") == (PHONE, None)
    assert pii.normalise_one("phone", "12812345678")[1]
    assert pii.normalise_one("crm_member_id", " M1 ") == ("M1", None)


def test_the_key_comes_from_settings(settings, world):
    services.resolve_identities(world.own_brand, links(("a", "phone", PHONE)))
    stored = Identity.objects.get().value_hash
    settings.TAGPORTAL_PII_KEY = "another-key"
    assert pii.hash_value("phone", PHONE) != stored
    assert services.lookup_customer(Customer.objects.all(), "phone", PHONE) is None
