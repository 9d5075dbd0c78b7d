"""OneID in the database: resolving identities into people, merges with their rule,
and splitting a merge again."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from tagportal.profiles import pii, services
from tagportal.profiles.models import Customer, Event, Identity, Order

from .conftest import OTHER_PHONE, PHONE, links

pytestmark = pytest.mark.django_db
MOMENT = dt.datetime(2024, 5, 1, 2, 0, tzinfo=dt.UTC)


def resolve(brand, *records):
    return services.resolve_identities(brand, links(*records))


def person(brand, type_, value):
    return services.lookup_customer(Customer.objects.filter(brand=brand), type_, value)


def add_event(brand, identity, client_id):
    return Event.objects.create(
        brand=brand, customer=identity.customer, identity=identity, client_id=client_id, type="store_visit",
        time=MOMENT,
    )  # fmt: skip


def test_resolving_creates_people_and_hashed_identities(brand):
    result = resolve(brand, ("r1", "phone", PHONE), ("r1", "wechat_unionid", "oU1"), ("r2", "jd_pin", "jd_x"))
    assert result.customers_created == 2 and result.identities_created == 3
    assert list(Customer.objects.filter(brand=brand).values_list("oneid", flat=True)) == [1, 2]
    phone = Identity.objects.get(type="phone")
    assert phone.value == "" and phone.masked == "138******78"
    assert phone.value_hash == pii.hash_value("phone", PHONE)
    unionid = Identity.objects.get(type="wechat_unionid")
    assert unionid.value == "oU1" and unionid.customer == phone.customer
    records = result.records.set_index("record")
    assert records.loc["r1", "oneid"] == 1 and records.loc["r1", "identity_id"] == phone.pk


def test_resolving_again_adds_nothing_and_another_brand_is_separate(brand, other_brand):
    resolve(brand, ("r1", "phone", PHONE))
    again = resolve(brand, ("x", "phone", f"+86 {PHONE[:3]}-{PHONE[3:7]}-{PHONE[7:]}"))
    assert again.customers_created == 0 and again.identities_created == 0
    assert again.records["oneid"].tolist() == [1]
    elsewhere = resolve(other_brand, ("x", "phone", PHONE))
    assert elsewhere.customers_created == 1
    assert Customer.objects.get(brand=other_brand).oneid == 1


def test_a_record_naming_two_people_merges_them_and_records_why(brand):
    resolve(brand, ("a", "phone", PHONE), ("b", "wechat_unionid", "oU1"), ("c", "phone", OTHER_PHONE))
    one, two = person(brand, "phone", PHONE), person(brand, "wechat_unionid", "oU1")
    one.attributes = {"gender": "female", "city": "上海"}
    one.save()
    two.attributes = {"city": "北京", "age": 30}
    two.save()
    visit = add_event(brand, Identity.objects.get(type="wechat_unionid"), "e1")
    result = resolve(brand, ("x", "wechat_unionid", "oU1"), ("x", "phone", PHONE), ("x", "tmall_id", "tb1"))
    assert result.customers_created == 0
    [merge] = result.merges
    assert (merge.kept_oneid, merge.merged_oneid, merge.rule) == (1, 2, "wechat_unionid")
    assert merge.identities_moved == [Identity.objects.get(type="wechat_unionid").pk]
    assert merge.events_moved == 1 and "wechat_unionid" in merge.reason
    kept = Customer.objects.get(brand=brand, oneid=1)
    merged = Customer.objects.get(brand=brand, oneid=2)
    assert merged.merged_into == kept
    assert kept.attributes == {"gender": "female", "city": "上海", "age": 30}
    assert set(kept.identities.values_list("type", flat=True)) == {"phone", "wechat_unionid", "tmall_id"}
    visit.refresh_from_db()
    assert visit.customer == kept
    assert list(Customer.objects.filter(brand=brand).active().values_list("oneid", flat=True)) == [1, 3]
    assert kept.history.first().history_change_reason.startswith("Merged OneID 2")


def test_split_undoes_a_merge(brand, world):
    resolve(brand, ("a", "phone", PHONE), ("b", "wechat_unionid", "oU1"))
    two = person(brand, "wechat_unionid", "oU1")
    two.attributes = {"age": 30}
    two.save()
    unionid = Identity.objects.get(type="wechat_unionid")
    visit = add_event(brand, unionid, "e1")
    order = Order.objects.create(
        brand=brand, customer=two, identity=unionid, client_id="o1", time=MOMENT, amount="99.00"
    )
    [merge] = resolve(brand, ("x", "wechat_unionid", "oU1"), ("x", "phone", PHONE)).merges
    kept = Customer.objects.get(oneid=1, brand=brand)
    assert kept.attributes == {"age": 30}

    services.split(merge, user=world.admin, reason="两个人共用一个微信")
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == world.admin
    assert merge.undo_reason == "两个人共用一个微信"
    kept.refresh_from_db()
    two.refresh_from_db()
    assert kept.attributes == {} and two.merged_into is None
    assert list(two.identities.values_list("type", flat=True)) == ["wechat_unionid"]
    visit.refresh_from_db()
    order.refresh_from_db()
    assert visit.customer == two and order.customer == two
    assert person(brand, "wechat_unionid", "oU1") == two
    with pytest.raises(ValidationError, match="already split"):
        services.split(merge)


def test_a_merge_that_was_merged_again_is_split_in_order(brand):
    resolve(brand, ("a", "phone", PHONE), ("b", "jd_pin", "j"), ("c", "tmall_id", "t"))
    [first] = resolve(brand, ("x", "jd_pin", "j"), ("x", "tmall_id", "t")).merges  # 3 into 2
    [second] = resolve(brand, ("y", "jd_pin", "j"), ("y", "phone", PHONE)).merges  # 2 into 1
    assert (first.kept_oneid, first.merged_oneid) == (2, 3)
    assert (second.kept_oneid, second.merged_oneid) == (1, 2)
    assert second.identities_moved and len(second.identities_moved) == 2
    with pytest.raises(ValidationError, match="split that merge first"):
        services.split(first)
    services.split(second)
    services.split(first)
    assert Customer.objects.filter(brand=brand).active().count() == 3
    assert person(brand, "tmall_id", "t").oneid == 3


def test_shared_device_does_not_merge_people_with_different_phones(brand):
    resolve(brand, ("a", "phone", PHONE), ("a", "device_id", "ipad-1"))
    result = resolve(brand, ("b", "phone", OTHER_PHONE), ("b", "device_id", "ipad-1"))
    assert result.customers_created == 1 and not result.merges
    assert person(brand, "device_id", "ipad-1").oneid == 1
    assert person(brand, "phone", OTHER_PHONE).oneid == 2
    # a phone-less record on that device joins its person
    joined = resolve(brand, ("c", "device_id", "ipad-1"), ("c", "douyin_openid", "dy1"))
    assert joined.customers_created == 0 and person(brand, "douyin_openid", "dy1").oneid == 1


def test_bad_identity_values_are_refused(brand):
    with pytest.raises(ValidationError, match="mobile number"):
        resolve(brand, ("a", "phone", "12345"))
    assert not Customer.objects.exists()


def test_lookup_compares_hashes_and_checks_input(brand, other_brand):
    resolve(brand, ("a", "phone", PHONE))
    mine = Customer.objects.filter(brand=brand)
    assert services.lookup_customer(mine, "phone", f"0086{PHONE}").oneid == 1
    assert services.lookup_customer(Customer.objects.filter(brand=other_brand), "phone", PHONE) is None
    with pytest.raises(ValidationError):
        services.lookup_customer(mine, "passport", "x")
    with pytest.raises(ValidationError):
        services.lookup_customer(mine, "phone", "not a phone")


def test_a_split_by_hand_holds_until_a_new_record_joins_them_again(brand):
    resolve(brand, ("a", "phone", PHONE), ("b", "jd_pin", "j"))
    [merge] = resolve(brand, ("x", "phone", PHONE), ("x", "jd_pin", "j")).merges
    services.split(merge)
    # a later record about one of them re-resolves their region: they stay apart
    assert not resolve(brand, ("y", "phone", PHONE), ("y", "tmall_id", "t")).merges
    assert Customer.objects.filter(brand=brand).active().count() == 2
    assert person(brand, "jd_pin", "j").oneid == 2
    # a new record naming both joins them again
    [again] = resolve(brand, ("z", "jd_pin", "j"), ("z", "tmall_id", "t")).merges
    assert (again.kept_oneid, again.merged_oneid) == (1, 2)
