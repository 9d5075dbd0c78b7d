import pytest
from django.core.exceptions import ValidationError

from tagportal.catalog import naming
from tagportal.catalog.models import NamingRule
from tagportal.catalog.services import suggest_code

from ..factories import BrandFactory, BusinessLineFactory, CategoryFactory, NamingRuleFactory, TagFactory


@pytest.mark.parametrize(
    "text,expected",
    [
        ("肤质类型", "fu_zhi_lei_xing"),
        ("RFM 分层", "rfm_fen_ceng"),
        ("近30天到店次数", "jin_30_tian_dao_dian_ci_shu"),
        ("女性", "nv_xing"),
        ("7日活跃", "n_7_ri_huo_yue"),
        ("WeCom好友·状态!", "wecom_hao_you_zhuang_tai"),
        ("", ""),
    ],
)
def test_to_snake(text, expected):
    assert naming.to_snake(text) == expected


@pytest.mark.django_db
def test_suggest_code_follows_the_category_rule():
    brand = BrandFactory(code="ruiyan", business_line=BusinessLineFactory(code="yimei"))
    rule = NamingRuleFactory(pattern="{business_line}_{domain}_{name}")
    parent = CategoryFactory(code="basic", naming_rule=rule)
    child = CategoryFactory(code="skin", parent=parent, naming_rule=None)
    assert suggest_code("肤质类型", child, brand) == "yimei_skin_fu_zhi_lei_xing"
    brand_rule = NamingRule.objects.create(name="品牌规则", pattern="{brand}__{name}")
    other = CategoryFactory(code="ops", naming_rule=brand_rule)
    assert suggest_code("肤质类型", other, brand) == "ruiyan__fu_zhi_lei_xing"
    assert suggest_code("肤质类型", None, None) == "fu_zhi_lei_xing"


@pytest.mark.parametrize(
    "pattern,fragment",
    [
        ("{business_line}_{domain}", "exactly once"),
        ("{name}_{name}", "exactly once"),
        ("{bl}_{name}", "Unknown part"),
        ("X-{name}", "Fixed text"),
        ("{name", "malformed"),
    ],
)
def test_bad_patterns(pattern, fragment):
    errors = naming.pattern_errors(pattern)
    assert any(fragment in e for e in errors), errors


@pytest.mark.django_db
def test_naming_rule_clean_names_the_pattern():
    rule = NamingRule(name="坏规则", pattern="{domain}")
    with pytest.raises(ValidationError) as info:
        rule.full_clean()
    assert "pattern" in info.value.message_dict


@pytest.mark.django_db
def test_saving_a_tag_that_breaks_its_rule_names_the_rule_and_an_example():
    line = BusinessLineFactory(code="yimei")
    brand = BrandFactory(code="ruiyan", business_line=line)
    rule = NamingRuleFactory(name="标准标签编码", pattern="{business_line}_{domain}_{name}", max_length=30)
    category = CategoryFactory(code="visit", naming_rule=rule)
    tag = TagFactory.build(brand=brand, business_line=line, category=category, code="visit_count")
    with pytest.raises(ValidationError) as info:
        tag.full_clean()
    message = info.value.message_dict["code"][0]
    assert "标准标签编码" in message
    assert "yimei_visit_skin_type" in message  # a valid example for this tag's context
    tag.code = "yimei_visit_" + "x" * 30  # right shape, too long
    with pytest.raises(ValidationError) as info:
        tag.full_clean()
    assert "3–30" in info.value.message_dict["code"][0]
    tag.code = "yimei_visit_Count"
    with pytest.raises(ValidationError):
        tag.full_clean()
    tag.code = "yimei_visit_count"
    tag.full_clean()  # follows the rule


@pytest.mark.django_db
def test_child_category_inherits_rule_and_uses_its_own_domain():
    line = BusinessLineFactory(code="yimei")
    brand = BrandFactory(code="ruiyan", business_line=line)
    root = CategoryFactory(code="basic", naming_rule=NamingRuleFactory())
    child = CategoryFactory(code="skin", parent=root, naming_rule=None)
    tag = TagFactory.build(brand=brand, business_line=line, category=child, code="yimei_basic_skin_type")
    with pytest.raises(ValidationError) as info:
        tag.full_clean()
    assert "yimei_skin_skin_type" in info.value.message_dict["code"][0]
