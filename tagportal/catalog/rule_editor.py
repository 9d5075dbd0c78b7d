"""What a page needs to show the rule editor (``static/catalog/rule_editor.js``) for a
tag: its brand, value type, kind and values, the URLs the editor calls and its
strings. The sample trial is the engine's (:func:`.hooks.rule_sample_url`)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext as _

from . import hooks


def editor_strings() -> dict[str, str]:
    return {
        "ruleType": _("Rule type"),
        "chooseType": _("Choose the rule type."),
        "chooseTypeOption": _("— choose a rule type —"),
        "attribute": _("Profile attribute"),
        "map": _("Map raw values"),
        "noMap": _("Raw values are used as value codes."),
        "addMap": _("Map raw values to codes"),
        "addMapRow": _("Add a mapping"),
        "removeMap": _("Use raw values as they are"),
        "rawValue": _("Raw value"),
        "metric": _("Metric"),
        "metricAgg": _("Aggregate records"),
        "metricDays": _("Days since a record"),
        "metricAttribute": _("A number attribute"),
        "metricTag": _("A number tag"),
        "metricIs": _("the metric"),
        "aggregation": _("Aggregation"),
        "source": _("Source"),
        "sourceAndField": _("Source and field"),
        "field": _("field"),
        "propertyField": _("custom property…"),
        "propertyKey": _("property name"),
        "where": _("Only records where"),
        "addFilter": _("Add a filter"),
        "window": _("Time window"),
        "anyTime": _("any time"),
        "lastDays": _("in the last N days"),
        "betweenDates": _("between two dates"),
        "days": _("days"),
        "daysUnit": _("days (Beijing time)"),
        "to": _("to"),
        "start": _("first day"),
        "end": _("last day"),
        "daysSince": _("Days since"),
        "buckets": _("Buckets"),
        "bucketMin": _("from (included)"),
        "bucketMax": _("below (excluded)"),
        "bucketHelp": _(
            "A person goes to the first bucket with from ≤ metric < below; leave an end empty for an open bucket."
        ),
        "addBucket": _("Add a bucket"),
        "condition": _("Condition"),
        "all": _("all of these (AND)"),
        "any": _("any of these (OR)"),
        "match": _("Match"),
        "not": _("NOT"),
        "notHelp": _("People who do not match this condition"),
        "addCondition": _("Add a condition"),
        "addGroup": _("Add a group"),
        "conditionOn": _("Condition on"),
        "leafAttribute": _("a profile attribute"),
        "leafMetric": _("a metric"),
        "leafTag": _("another tag"),
        "tag": _("Tag"),
        "operator": _("Operator"),
        "value": _("Value"),
        "low": _("low end"),
        "high": _("high end"),
        "and": _("and"),
        "listPlaceholder": _("values separated by commas"),
        "yes": _("Yes"),
        "no": _("No"),
        "caseN": _("Case %(n)s:"),
        "when": _("when"),
        "then": _("the value is"),
        "addCase": _("Add a case"),
        "otherwise": _("Otherwise"),
        "noDefault": _("no value"),
        "pick": _("Take"),
        "manualHelp": _("A manual tag's values come from uploaded lists: there is no rule to write."),
        "ruleNote": _("Note on the rule"),
        "descriptionPlaceholder": _("optional: what the rule means, for the reviewer"),
        "advanced": _("Advanced (text syntax)"),
        "backToForm": _("Back to the form"),
        "textHelp": _(
            'The rule in the text syntax, e.g. metric: count(events where type = "store_visit" during '
            "last 90 days). The form follows what you write here."
        ),
        "checking": _("Checking…"),
        "valid": _("The rule is valid. It reads:"),
        "problems": _("%(n)s problem(s): see the messages next to the fields."),
        "failed": _("The check failed."),
        "network": _("The server could not be reached."),
        "notJson": _("The definition is not valid JSON; correct it in the text box."),
        "trySample": _("Try on a sample"),
        "sampling": _("Evaluating the rule on a sample of the brand's people…"),
        "sampleOf": _("Sample of %(n)s people"),
        "sampleAll": _("All %(n)s people of the brand"),
        "coverage": _("coverage"),
        "seconds": _("%(s)s s"),
        "stats": _("min %(min)s · median %(median)s · mean %(mean)s · max %(max)s"),
        "range": _("Range"),
        "people": _("People"),
        "share": _("Share"),
        "valueCode": _("Code"),
        "valueLabel": _("Chinese label"),
        "valueLabelEn": _("English label"),
        "order": _("Order"),
        "moveUp": _("Move up"),
        "moveDown": _("Move down"),
        "remove": _("Remove"),
        "addValue": _("Add a value"),
        "noValues": _("No values yet."),
        "noValuesBoolean": _("Shown as Yes / No; add the values true and false to name them otherwise."),
        "searchRegions": _("Search regions"),
        "noneChosen": _("None chosen"),
        "chosen": _("%(n)s chosen"),
    }


def editor_config(tag, *, target: str, values_target: str | None = None, inputs: bool = False) -> dict:
    """The editor's configuration for ``tag`` (JSON for ``json_script``); ``target`` is the
    id of the definition textarea, ``values_target`` that of the values textarea. With
    ``inputs`` the editor follows the form's value type and kind selects (the tag form)."""
    return {
        "target": target,
        "values_target": values_target,
        "brand": tag.brand.code if tag.brand_id else "",
        "tag": tag.pk,
        "tag_code": tag.code,
        "value_type": tag.value_type or "",
        "kind": tag.kind or "",
        "values": tag.values or [],
        "language_url": reverse("catalog-rule-language"),
        "check_url": reverse("catalog-rule-check"),
        "sample_url": hooks.rule_sample_url(),
        "value_type_input": "id_value_type" if inputs else None,
        "kind_input": "id_kind" if inputs else None,
        "strings": editor_strings(),
    }
