"""factory_boy factories for the tag dictionary."""

import factory
from django.contrib.auth.models import Group

from tagportal.catalog.models import Brand, BusinessLine, Category, NamingRule, Region, Tag
from tagportal.catalog.services import grant_business_line
from tagportal.core.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("pw")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))

    @factory.post_generation
    def grants(self, create, extracted, **kwargs):
        """``grants=[(business_line, "operators"), ...]``"""
        for business_line, member in extracted or []:
            grant_business_line(self, business_line, member)


class BusinessLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessLine
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"bl{n}")
    name = factory.Sequence(lambda n: f"业务线{n}")
    name_en = factory.Sequence(lambda n: f"Business line {n}")


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand
        django_get_or_create = ("code",)

    business_line = factory.SubFactory(BusinessLineFactory)
    code = factory.Sequence(lambda n: f"brand{n}")
    name = factory.Sequence(lambda n: f"品牌{n}")
    name_en = factory.Sequence(lambda n: f"Brand {n}")


class NamingRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NamingRule
        django_get_or_create = ("name",)

    name = "业务线前缀规则"
    pattern = "{business_line}_{domain}_{name}"
    min_length = 3
    max_length = 64
    example_name = "skin_type"


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    code = factory.Sequence(lambda n: f"cat{n}")
    name = factory.Sequence(lambda n: f"分类{n}")
    name_en = factory.Sequence(lambda n: f"Category {n}")
    naming_rule = factory.SubFactory(NamingRuleFactory)


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"region{n}")
    name = factory.Sequence(lambda n: f"地区{n}")
    level = "country"


class TagFactory(factory.django.DjangoModelFactory):
    """A valid draft tag; its code follows the category's naming rule."""

    class Meta:
        model = Tag

    brand = factory.SubFactory(BrandFactory)
    business_line = factory.LazyAttribute(lambda o: o.brand.business_line)
    category = factory.SubFactory(CategoryFactory)
    name = factory.Sequence(lambda n: f"到店次数{n}")
    name_en = factory.Sequence(lambda n: f"Store visits {n}")
    code = factory.LazyAttributeSequence(
        lambda o, n: f"{o.brand.business_line.code}_{o.category.code}_visits_{n}"
    )
    description = "近90天到店次数"
    kind = "behavior"
    value_type = "number"
    values = factory.LazyFunction(
        lambda: [
            {"code": "low", "label": "低", "label_en": "Low", "max": 2},
            {"code": "high", "label": "高", "label_en": "High", "min": 2},
        ]
    )
    definition = factory.LazyFunction(
        lambda: {
            "type": "metric",
            "metric": {
                "agg": "count",
                "source": "events",
                "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
                "window": {"last_days": 90},
            },
        }
    )
