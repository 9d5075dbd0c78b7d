"""OneID resolution as a pure function: components, rules and priorities, guards,
determinism and incremental runs."""

import numpy as np
import pandas as pd
import pytest

from tagportal.profiles.oneid import DEFAULT_RULES, Rule, check_rules, resolve

from .conftest import links


def oneids(resolution) -> dict:
    return dict(zip(resolution.records["record"], resolution.records["oneid"], strict=True))


def existing(resolution) -> pd.DataFrame:
    return resolution.identities[["type", "app", "value", "oneid"]]


def test_identities_on_one_record_are_one_person_and_shared_identities_join_records():
    result = resolve(
        links(
            ("r1", "phone", "p1"),
            ("r1", "wechat_unionid", "u1"),
            ("r2", "wechat_unionid", "u1"),
            ("r2", "tmall_id", "t1"),
            ("r3", "jd_pin", "j1"),
        )
    )
    assert oneids(result) == {"r1": 1, "r2": 1, "r3": 2}
    assert result.new_oneids.tolist() == [1, 2]
    assert result.merges.empty
    by_value = dict(zip(result.identities["value"], result.identities["oneid"], strict=True))
    assert by_value == {"p1": 1, "u1": 1, "t1": 1, "j1": 2}
    assert result.identities["previous_oneid"].isna().all()


def test_new_oneids_follow_the_first_record_and_start_at_next_oneid():
    result = resolve(links(("b", "jd_pin", "j"), ("a", "phone", "p"), ("b", "tmall_id", "t")), next_oneid=41)
    assert oneids(result) == {"b": 41, "a": 42}


def test_same_value_of_different_types_or_apps_is_not_the_same_identity():
    frame = links(("r1", "jd_pin", "x"), ("r2", "tmall_id", "x"))
    frame.loc[len(frame)] = ["r3", "wechat_openid", "app1", "o"]
    frame.loc[len(frame)] = ["r4", "wechat_openid", "app2", "o"]
    assert oneids(resolve(frame)) == {"r1": 1, "r2": 2, "r3": 3, "r4": 4}


def test_a_device_never_merges_two_people_with_different_phones():
    result = resolve(
        links(
            ("r1", "phone", "p1"),
            ("r1", "device_id", "d"),
            ("r2", "phone", "p2"),
            ("r2", "device_id", "d"),
            ("r3", "device_id", "d"),
        )
    )
    people = oneids(result)
    assert people["r1"] != people["r2"]
    # the device and the record naming only the device go to the person whose phone
    # sorts first (by keyed hash; here the values stand for the hashes)
    device = result.identities.set_index("value").loc["d", "oneid"]
    assert device == people["r1"] == people["r3"]


def test_a_device_links_people_when_at_most_one_of_them_has_a_phone():
    result = resolve(
        links(
            ("r1", "phone", "p1"),
            ("r1", "device_id", "d"),
            ("r2", "douyin_openid", "dy"),
            ("r2", "device_id", "d"),
        )
    )
    assert oneids(result) == {"r1": 1, "r2": 1}


def test_the_device_guard_sees_existing_peoples_phones():
    first = resolve(links(("a", "phone", "p1"), ("a", "device_id", "d")))
    # a new person with another phone on the same device stays apart
    second = resolve(links(("b", "phone", "p2"), ("b", "device_id", "d")), existing(first), next_oneid=2)
    assert oneids(second) == {"b": 2}
    assert second.merges.empty
    # without the context of person 1's phone the guard could not know
    blind = existing(first)[lambda f: f["type"] == "device_id"]
    assert oneids(resolve(links(("b", "phone", "p2"), ("b", "device_id", "d")), blind, next_oneid=2)) == {
        "b": 1
    }


def test_incremental_records_join_existing_people_and_merges_keep_the_smallest_oneid():
    first = resolve(links(("a", "phone", "p1"), ("b", "wechat_unionid", "u1"), ("c", "jd_pin", "j1")))
    assert oneids(first) == {"a": 1, "b": 2, "c": 3}
    second = resolve(
        links(
            ("x", "jd_pin", "j1"),
            ("x", "tmall_id", "t9"),
            ("y", "phone", "p1"),
            ("y", "wechat_unionid", "u1"),
        ),
        existing(first),
        next_oneid=4,
    )
    assert oneids(second) == {"x": 3, "y": 1}
    assert second.new_oneids.tolist() == []
    # y names person 1 by phone, then its unionid (the lower priority rule) brings person 2
    assert second.merges.to_dict("records") == [{"kept": 1, "merged": 2, "rule": "wechat_unionid"}]
    identities = second.identities.set_index("value")
    assert identities.loc["u1", "previous_oneid"] == 2 and identities.loc["u1", "oneid"] == 1
    assert pd.isna(identities.loc["t9", "previous_oneid"]) and identities.loc["t9", "oneid"] == 3


def test_a_merge_is_attributed_to_the_highest_priority_rule_that_links_the_people():
    first = resolve(links(("a", "crm_member_id", "m1"), ("b", "jd_pin", "j1"), ("c", "device_id", "d1")))
    # one record names all three people: the CRM id (80) joins a and b before the
    # platform id (50); the device (10) brings c in last.
    second = resolve(
        links(("x", "crm_member_id", "m1"), ("x", "jd_pin", "j1"), ("x", "device_id", "d1")),
        existing(first),
        next_oneid=4,
    )
    assert second.merges.to_dict("records") == [
        {"kept": 1, "merged": 2, "rule": "platform_id"},
        {"kept": 1, "merged": 3, "rule": "device_id"},
    ]


def test_rules_are_configurable():
    # phones no longer link on their own: only the CRM id does
    rules = (
        Rule("crm", ("crm_member_id",), 100),
        Rule("phone_weak", ("phone",), 10, never_merges=("crm_member_id",)),
    )
    result = resolve(
        links(
            ("a", "crm_member_id", "m1"),
            ("a", "phone", "p"),
            ("b", "crm_member_id", "m2"),
            ("b", "phone", "p"),
        ),
        rules=rules,
    )
    assert oneids(result) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="no OneID rule covers"):
        resolve(links(("a", "jd_pin", "j")), rules=rules)


def test_invalid_rules_are_refused():
    with pytest.raises(ValueError, match="is in rules"):
        check_rules((Rule("a", ("phone",), 10), Rule("b", ("phone",), 5)))
    with pytest.raises(ValueError, match="higher priority"):
        check_rules((Rule("a", ("phone",), 10), Rule("b", ("device_id",), 50, never_merges=("phone",))))
    check_rules(DEFAULT_RULES)


def test_resolution_is_deterministic_and_vectorised_at_scale():
    rng = np.random.default_rng(3)
    n = 200_000
    person = rng.integers(0, n // 2, n)
    frame = pd.DataFrame(
        {
            "record": np.arange(n),
            "type": np.where(rng.random(n) < 0.5, "phone", "crm_member_id"),
            "app": "",
            "value": person.astype(str),
        }
    )
    one = resolve(frame)
    two = resolve(frame.copy())
    pd.testing.assert_frame_equal(one.records, two.records)
    # records naming the same identity are one person
    same = frame.assign(oneid=one.records["oneid"].to_numpy()).groupby(["type", "value"])["oneid"].nunique()
    assert (same == 1).all()


def partition(resolution) -> set[frozenset]:
    table = resolution.identities
    return {frozenset(zip(g["type"], g["app"], g["value"], strict=True)) for _o, g in table.groupby("oneid")}


def test_the_people_do_not_depend_on_the_order_of_the_records():
    frame = links(
        ("a", "phone", "p2"),
        ("a", "device_id", "d"),
        ("b", "phone", "p1"),
        ("b", "device_id", "d"),
        ("c", "douyin_openid", "x"),
        ("c", "device_id", "d"),
        ("d", "phone", "p3"),
        ("d", "device_id", "e"),
        ("f", "douyin_openid", "x"),
        ("f", "device_id", "e"),
        ("g", "device_id", "e"),
        ("g", "device_id", "h"),
    )
    expected = partition(resolve(frame))
    rng = np.random.default_rng(5)
    for _ in range(20):
        shuffled = frame.iloc[rng.permutation(len(frame))]
        renamed = shuffled.assign(record=shuffled["record"].map(lambda r: f"z{r}"))
        assert partition(resolve(renamed)) == expected
    # d (seen with p1, p2 and the person without a phone) joins p1's person and x; x brings
    # e, which cannot also bring p3: p3 stays alone, h comes with e (a record naming only devices)
    assert expected == {
        frozenset(
            {
                ("phone", "", "p1"),
                ("device_id", "", "d"),
                ("douyin_openid", "", "x"),
                ("device_id", "", "e"),
                ("device_id", "", "h"),
            }
        ),
        frozenset({("phone", "", "p2")}),
        frozenset({("phone", "", "p3")}),
    }


def test_every_identity_gets_a_oneid_when_a_device_is_shared_by_two_phones():
    result = resolve(
        links(
            ("1", "phone", "p1"),
            ("1", "device_id", "dA"),
            ("2", "phone", "p2"),
            ("2", "device_id", "dA"),
            ("3", "phone", "p2"),
            ("3", "device_id", "dB"),
        )
    )
    by_value = dict(zip(result.identities["value"], result.identities["oneid"], strict=True))
    assert by_value == {"p1": 1, "dA": 1, "p2": 2, "dB": 2}
