"""factory_boy factories for the lineage."""

import factory

from tagportal.lineage.models import DataField, DataSource

from ..factories import TagFactory


class DataSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataSource
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"source-{n}")
    name = factory.Sequence(lambda n: f"数据源{n}")
    name_en = factory.Sequence(lambda n: f"Source {n}")
    kind = "crm"
    business_line = None
    refresh_sla_hours = 24
    last_loaded_at = None


class DataFieldFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataField

    source = factory.SubFactory(DataSourceFactory)
    name = factory.Sequence(lambda n: f"field_{n}")
    data_type = "string"
    maps_to = ""


def metric_tag(brand, category, code, source, field, agg="sum", **kwargs):
    """A number tag aggregating ``source.field`` over 90 days."""
    return TagFactory(
        brand=brand,
        category=category,
        code=code,
        definition={
            "type": "metric",
            "metric": {"agg": agg, "source": source, "field": field, "window": {"last_days": 90}},
        },
        **kwargs,
    )


def reading_tag(brand, category, code, upstream, **kwargs):
    """A number tag whose value is another (number) tag's: the smallest composite."""
    return TagFactory(
        brand=brand,
        category=category,
        code=code,
        kind="composite",
        definition={"type": "metric", "metric": {"tag": upstream.code}},
        **kwargs,
    )


def all_of_tag(brand, category, code, *upstream, **kwargs):
    """A yes/no composite tag: every upstream (number) tag is at least 1."""
    return TagFactory(
        brand=brand,
        category=category,
        code=code,
        kind="composite",
        value_type="boolean",
        values=[],
        definition={
            "type": "condition",
            "condition": {"all": [{"tag": t.code, "op": "gte", "value": 1} for t in upstream]},
        },
        **kwargs,
    )
