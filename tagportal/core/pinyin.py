"""Pinyin of Chinese text, without tones (pypinyin): what code suggestions, the tag
picker's search and the merge report's comparison of names read Chinese names as.

>>> syllables("肤质类型")
['fu', 'zhi', 'lei', 'xing']
>>> syllables("RFM 分层")  # runs of other characters stay as they are
['RFM ', 'fen', 'ceng']
>>> search_keys("肤质类型")
('fuzhileixing', 'fzlx')
>>> readings("RFM 分层")
'RFM fen ceng'
"""

from __future__ import annotations

import re
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

#: A Chinese character (the unified ideographs and extension A).
CJK = re.compile(r"[\u3400-\u9fff]")
_SEPARATORS = re.compile(r"[\s_\-·]+")


def syllables(text: str) -> list[str]:
    """The syllables of ``text``, words read as phrases (重庆 is chong qing), ü spelled
    ``v``; runs of other characters as they are."""
    return lazy_pinyin(text or "", style=Style.NORMAL, errors="default", v_to_u=False)


@lru_cache(maxsize=8192)
def search_keys(name: str) -> tuple[str, str]:
    """``("fuzhileixing", "fzlx")`` for 肤质类型: the full pinyin and the initials, in
    lower case, without spaces, underscores, hyphens or middle dots; characters that are
    not Chinese are kept as they are."""
    parts = [s.lower() for s in syllables(name) if s.strip()]
    full = _SEPARATORS.sub("", "".join(parts))
    initials = _SEPARATORS.sub("", "".join(s if not s.isalpha() or not s.isascii() else s[0] for s in parts))
    return full, initials


@lru_cache(maxsize=65536)
def reading(char: str) -> str:
    """The usual reading of one character."""
    return "".join(syllables(char))


def readings(text: str) -> str:
    """Each Chinese character's usual reading, space separated; other runs of characters
    stay as they are (character by character: a hundred times faster than phrase
    segmentation, and as good to find homophones)."""
    tokens, run = [], ""
    for char in text:
        if CJK.match(char):
            if run.strip():
                tokens.append(run.strip())
            run = ""
            tokens.append(reading(char))
        else:
            run += char
    if run.strip():
        tokens.append(run.strip())
    return " ".join(tokens)
