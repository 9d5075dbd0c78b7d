"""The one pinyin module: syllables for code suggestions, keys for the tag picker's
search, character readings for the merge report."""

from __future__ import annotations

import doctest

import pytest

from tagportal.core import pinyin


def test_the_module_examples_hold():
    assert doctest.testmod(pinyin).failed == 0


def test_syllables_read_words_as_phrases_and_spell_u_umlaut_v():
    assert pinyin.syllables("重庆银行") == ["chong", "qing", "yin", "hang"]
    assert pinyin.syllables("绿色") == ["lv", "se"]
    assert pinyin.syllables("") == []


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("肤质类型", ("fuzhileixing", "fzlx")),
        ("RFM 分层", ("rfmfenceng", "rfmfc")),  # a run of other characters stays whole
        ("近30天_到店-次数·新", ("jin30tiandaodiancishuxin", "j30tddcsx")),
    ],
)
def test_search_keys(name, keys):
    assert pinyin.search_keys(name) == keys


def test_readings_are_per_character_so_homophones_match():
    assert pinyin.readings("复购") == pinyin.readings("复够") == "fu gou"
    assert pinyin.readings("近30天 复购") == "jin 30 tian fu gou"
