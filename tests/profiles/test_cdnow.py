"""The real CDNOW purchase data as orders."""

import io

import pytest
from django.core.management import call_command

from tagportal.profiles import cdnow, services
from tagportal.profiles.models import Customer, Identity, Order

SAMPLE_LINES = 6919
SAMPLE_CUSTOMERS = 2357


def test_the_sample_ships_with_the_project():
    assert cdnow.SAMPLE.exists()
    assert cdnow.default_file() == cdnow.SAMPLE


def test_reading_both_formats():
    master = io.StringIO(
        " customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n 00001 19970101  2   0.00\n"
    )
    lines = cdnow.read(master)
    assert lines.to_dict("records") == [
        {"customer_id": "00001", "date": "19970101", "quantity": 1, "amount": 11.77},
        {"customer_id": "00001", "date": "19970101", "quantity": 2, "amount": 0.0},
    ]
    orders = cdnow.to_orders(lines)
    assert orders["client_id"].tolist() == ["cdnow-00001-19970101-1", "cdnow-00001-19970101-2"]
    # a Beijing date: midnight in Beijing is 16:00 UTC the day before
    assert str(orders["time"].iloc[0]) == "1996-12-31 16:00:00+00:00"
    sample = cdnow.read(cdnow.SAMPLE)
    assert len(sample) == SAMPLE_LINES and sample["customer_id"].nunique() == SAMPLE_CUSTOMERS
    with pytest.raises(cdnow.CdnowFormatError):
        cdnow.read(io.StringIO("1 2 3\n"))


@pytest.mark.slow
@pytest.mark.django_db
def test_importing_the_sample(world):
    brand = world.own_brand
    out = io.StringIO()
    call_command("import_cdnow", brand=brand.code, stdout=out)
    assert "succeeded" in out.getvalue()
    assert Customer.objects.filter(brand=brand).count() == SAMPLE_CUSTOMERS
    assert Identity.objects.filter(brand=brand, type="crm_member_id").count() == SAMPLE_CUSTOMERS
    assert Order.objects.filter(brand=brand).count() == SAMPLE_LINES
    lines = cdnow.read(cdnow.SAMPLE)
    first = lines.iloc[0]
    holder = services.lookup_customer(
        Customer.objects.filter(brand=brand), "crm_member_id", first["customer_id"]
    )
    assert holder.orders.count() == (lines["customer_id"] == first["customer_id"]).sum()
    total = sum(Order.objects.filter(brand=brand).values_list("amount", flat=True))
    assert float(total) == pytest.approx(lines["amount"].sum(), abs=0.01)
    # importing it again adds nothing
    call_command("import_cdnow", brand=brand.code, stdout=io.StringIO())
    assert Order.objects.filter(brand=brand).count() == SAMPLE_LINES
    assert Customer.objects.filter(brand=brand).count() == SAMPLE_CUSTOMERS
