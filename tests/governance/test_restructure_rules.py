"""A rule naming a tag by the code it had before a restructure keeps working: the engine
reads the tag the old code now belongs to (same values, same order of evaluation) and
the validators accept the rule, while the rule as stored is left as written."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from tagportal.catalog.models import Tag, TagAlias
from tagportal.catalog.rule_checks import check_rule
from tagportal.engine import bitmaps as bm
from tagportal.engine import services as engine
from tagportal.engine.models import TagValueBitmap
from tagportal.governance import restructure
from tagportal.governance import services as gov

from ..factories import CategoryFactory
from .conftest import bool_tag, composite_tag, publish, reads

AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)
OLD = "yimei_skin_you_pi"
NEW = "yimei_skinfile_you_pi"


def frames():
    """People 1..6; 1, 2 and 3 ordered twice in the last 30 days (the yes/no rule)."""
    profiles = pd.DataFrame({"oneid": range(1, 7)})
    events = pd.DataFrame({"oneid": [], "time": pd.to_datetime([], utc=True), "type": []})
    buyers = [1, 1, 2, 2, 3, 3, 4]
    orders = pd.DataFrame(
        {
            "oneid": buyers,
            "time": pd.to_datetime(
                [AS_OF - dt.timedelta(days=k % 2 + 1) for k in range(len(buyers))], utc=True
            ),
            "amount": [10.0] * len(buyers),
        }
    )
    return profiles, events, orders


def stored(tag) -> dict[str, list[int]]:
    rows = TagValueBitmap.objects.filter(computation__tag=tag)
    return {row.value: sorted(bm.deserialize(bytes(row.bitmap))) for row in rows}


@pytest.fixture
def recoded(gw):
    """Tag A (yes/no) recoded by an approved rename of its category; composite B, in
    another category, reads A by its old code."""
    w = gw
    w.skin = CategoryFactory(code="skin", name="肤质档案")
    w.oily = publish(bool_tag(w.own_brand, w.skin, "you_pi"), user=w.admin)
    w.reader = publish(composite_tag(w.own_brand, w.category, "reads_oily", OLD), user=w.admin)
    engine.compute_brand(w.own_brand, frames=frames(), as_of=AS_OF)
    w.before = stored(w.reader)
    cr = restructure.propose(
        w.steward, operation="rename", source=w.skin.pk, new_code="skinfile", submit_now=True
    )
    gov.approve(w.steward2, cr, "同意", apply_now=True)
    assert Tag.objects.get(pk=w.oily.pk).code == NEW
    assert TagAlias.objects.filter(brand=w.own_brand, code=OLD, target=w.oily).exists()
    return w


def test_a_rule_reading_an_old_code_computes_the_same_values(recoded):
    w = recoded
    assert w.before == {"true": [1, 2, 3], "false": [4, 5, 6]}
    report = engine.compute_brand(w.own_brand, frames=frames(), as_of=AS_OF)
    assert {run.tag_id: run.status for run in report.runs}[w.reader.pk] == "success"
    assert stored(w.reader) == w.before
    # computed with A in the same run: A's new values show in B at once (3 out, 5 in)
    fewer = frames()
    fewer[2].loc[fewer[2]["oneid"] == 3, "oneid"] = 5
    engine.compute_brand(w.own_brand, frames=fewer, as_of=AS_OF)
    assert stored(w.reader)["true"] == [1, 2, 5]
    reader = Tag.objects.get(pk=w.reader.pk)
    assert reader.definition == reads(OLD)  # the stored rule is as written
    assert reader.versions.get(version=reader.published_version).snapshot["definition"] == reads(OLD)


def test_a_rule_reading_an_old_code_still_validates(recoded):
    w = recoded
    reader = Tag.objects.get(pk=w.reader.pk)
    reader.full_clean()  # no "unknown tag"
    checked = check_rule(w.own_brand, value_type="boolean", definition=reads(OLD), kind="composite")
    assert checked.reads == [OLD]
    with pytest.raises(Exception, match="nope"):
        check_rule(w.own_brand, value_type="boolean", definition=reads("yimei_skin_nope"), kind="composite")
