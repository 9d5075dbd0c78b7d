"""A text syntax for rule documents (规则文本语法), parsed with lark, never ``eval``.

The text is another spelling of the JSON rule document of :mod:`tagportal.rules.definitions`:
:func:`parse_definition` turns text into the document, :func:`format_definition` turns a
document into canonical text, and ``parse_definition(format_definition(doc)) == doc`` for
every valid document (up to the defaults listed under *Canonical form*).
:func:`parse_condition` and :func:`format_condition` do the same for a bare condition
(audience expressions).  The parser checks syntax only: an unknown attribute, field, event
type or tag parses fine and is reported by :func:`~tagportal.rules.definitions.validate_definition`.

Definitions
-----------
::

    condition: COND                                   {"type": "condition", "condition": COND}
    metric: METRIC                                    {"type": "metric", "metric": METRIC}
    bucket METRIC:                                    {"type": "bucket", "metric": METRIC,
      "under_18" below 18                              "buckets": [{"value": "under_18", "max": 18},
      "age_18_24" from 18 below 25                                 {"value": "age_18_24", "min": 18, "max": 25},
      "age_50_plus" from 50                                        {"value": "age_50_plus", "min": 50}]}
    cases:                                            {"type": "cases", "cases": [
      when COND then "vip"                               {"value": "vip", "when": COND}, ...],
      when COND then "normal"                          "default": "new"}
      else "new"
    preference: most_frequent(events.properties.category where type = "product_view"
                              during last 90 days) map {"护肤": "skincare", "彩妆": "makeup"}
                                                      {"type": "preference", "pick": "most_frequent",
                                                       "source": "events", "field": "properties.category",
                                                       "where": [...], "window": {...}, "map": {...}}
                                                      (the pick is most_frequent, first or last)
    attribute: gender map {"F": "female", "M": "male"}
                                                      {"type": "attribute", "attribute": "gender", "map": {...}}
    manual                                            {"type": "manual"}

Any definition may start with ``description "…"``.  ``from N`` is the bucket's inclusive
``min``, ``below N`` its exclusive ``max`` (``min <= x < max``); either may be left out.
``else`` and ``map {…}`` are optional.  Bucket lines and ``when`` lines may end with ``;``,
so a definition fits on one line: ``cases: when age < 18 then "minor"; else "adult"``.
Value codes (``then``, ``else``, buckets, map values) are literals: ``"text"``, numbers,
``true`` or ``false`` (boolean tags use ``then true``).

Conditions (COND)
-----------------
::

    gender = "female"                       {"attribute": "gender", "op": "eq", "value": "female"}
    city in ("深圳", "广州")                   {"attribute": "city", "op": "in", "value": ["深圳", "广州"]}
    member_level is set                     {"attribute": "member_level", "op": "is_set", "value": true}
    tag(yimei_rfm_rfm_segment) in ("champion", "loyal")     (also written @yimei_rfm_rfm_segment)
                                            {"tag": "yimei_rfm_rfm_segment", "op": "in", "value": [...]}
    count(events where type = "store_visit" during last 90 days) >= 3
                                            {"metric": {...}, "op": "gte", "value": 3}
    metric(age) >= 30  /  metric(tag(x)) >= 3
                                            {"metric": {"attribute": "age"}, ...} / {"metric": {"tag": "x"}, ...}
    A and B and C                           {"all": [A, B, C]}
    A or B                                  {"any": [A, B]}
    not A                                   {"not": A}
    all(A)  /  any(A, B)                    {"all": [A]} / {"any": [A, B]}  (any number of items)
    ( A )                                   grouping

Precedence: ``not`` binds tighter than ``and``, which binds tighter than ``or``.  A chain
of ``and`` (or of ``or``) becomes one flat list; parentheses keep their nesting, so
``(A and B) and C`` is ``{"all": [{"all": [A, B]}, C]}``.

Comparisons (the same after an attribute, a tag, a metric and a field in ``where``)::

    = V     != V                   eq, ne        (V: "text", number, true or false; == also works)
    > N  >= N  < N  <= N           gt, gte, lt, lte   (N: a number such as 3, -1.5, 1e3)
    between N and N                between           [N, N]
    in (V, ...)   not in (V, ...)  in, not_in
    is set        is not set       is_set            value true / false
    contains "text"                contains

Metrics (METRIC)
----------------
::

    count(events where type = "purchase" during last 30 days)
    count_distinct(orders.sku during 2026-01-01 to 2026-03-31)
    sum(orders.amount where category = "光电" during last 365 days)     (also avg, min, max)
    days_since(last events where type = "purchase")                     (first or last)
    age                   -> {"attribute": "age"}   (as the metric of metric:, bucket)
    tag(code)  /  @code   -> {"tag": "code"}

``SOURCE.FIELD`` names the source (``events``, ``orders``) and the field; a field may be
``properties.<key>`` (``properties."中文 key"`` when the key is not an ASCII name).
``where`` lists field comparisons joined with ``and``.  Windows (Beijing days)::

    during last 90 days                    {"last_days": 90}     (last 1 day)
    during 2026-01-01 to 2026-03-31        {"between": ["2026-01-01", "2026-03-31"]}
    during between 2026-01-01 and 2026-03-31                     (the same)

Lexical rules
-------------
Names (attributes, fields, sources, tag codes) are ASCII: letters, digits and ``_``, not
starting with a digit.  Texts are double-quoted with JSON escapes (``"say \\"hi\\""``,
``"a\\\\b"``, ``"\\u00e9"``) and may contain Chinese.  Keywords are lower case and
reserved: a field part or tag code spelled like one (or not a name at all) is written as a
text — ``properties."first"``, ``properties."中文 key"``, ``tag("@skin_type")``.  Spaces,
line breaks (and the full-width space) separate tokens; ``#`` starts a comment to the end
of the line.

Canonical form
--------------
:func:`format_definition` writes one canonical text: ``tag(code)`` rather than ``@code``,
``=`` rather than ``==``, windows as ``during last N days`` / ``during D to D``, nested
``and``/``or`` chains in parentheses (``A or (B and C)``), ``cases`` and ``bucket`` items
one per line, long maps one entry per line.  It leaves out what is empty or default: an
empty ``where`` list, a ``None`` ``default``/``min``/``max``/``map``; ``is_set`` without a
value is written ``is set`` and comes back with ``"value": true``.  A document using those
forms comes back normalised; every other valid document comes back equal.  Documents that cannot be
spelled (unknown operators, a list compared with ``=``, keys the grammar does not know —
all of them invalid) make the formatter raise :class:`RuleFormatError`.

Errors
------
:class:`RuleSyntaxError` (a ``ValueError``) carries ``line``, ``column`` (1-based, a
Chinese character counts as one column), ``message`` and ``expected``; its text reads
``line 1, column 8: expected a number after '>='``.  The messages cover unterminated texts,
missing operands, unknown keywords, unbalanced parentheses, names where a text was
expected (``gender = female``) and full-width punctuation (``（``, ``，``, ``“``).

The formal grammar is :data:`GRAMMAR` (lark, LALR(1), contextual lexer).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache

from django.utils.translation import gettext as _
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from .definitions import AGGREGATIONS, DEFINITION_TYPES, PICKS

__all__ = [
    "RuleFormatError",
    "RuleSyntaxError",
    "format_condition",
    "format_definition",
    "parse_condition",
    "parse_definition",
]

GRAMMAR = r"""
start_definition: [description] body
start_condition: cond

description: "description" STRING

?body: "condition" ":" cond                                  -> def_condition
     | "metric" ":" metric                                   -> def_metric
     | "bucket" metric ":" (bucket_item ";"?)*               -> def_bucket
     | "cases" ":" (case_item ";"?)* [else_item]             -> def_cases
     | "preference" ":" pick "(" source_field [where] [window] ")" [map] -> def_preference
     | "attribute" ":" NAME [map]                            -> def_attribute
     | "manual"                                              -> def_manual

bucket_item: literal ["from" NUMBER] ["below" NUMBER]
case_item: "when" cond "then" literal
else_item: "else" literal ";"?
!pick: "most_frequent" | "first" | "last"

map: "map" "{" "}"
   | "map" "{" map_entry ("," map_entry)* ","? "}"
map_entry: STRING ":" literal

?cond: and_cond
     | and_cond ("or" and_cond)+                             -> any_chain
?and_cond: not_cond
         | not_cond ("and" not_cond)+                        -> all_chain
?not_cond: "not" not_cond                                    -> negation
         | atom
?atom: "(" cond ")"
     | "all" "(" cond_list ")"                               -> all_call
     | "any" "(" cond_list ")"                               -> any_call
     | NAME test                                             -> attribute_cond
     | tag_ref test                                          -> tag_cond
     | agg_metric test                                       -> metric_cond
     | days_metric test                                      -> metric_cond
     | "metric" "(" metric ")" test                          -> metric_cond
cond_list: (cond ("," cond)* ","?)?

test: "=" literal                                            -> eq
    | "==" literal                                           -> eq
    | "!=" literal                                           -> ne
    | ">" NUMBER                                             -> gt
    | ">=" NUMBER                                            -> gte
    | "<" NUMBER                                             -> lt
    | "<=" NUMBER                                            -> lte
    | "between" NUMBER "and" NUMBER                          -> between
    | "in" list                                              -> in_list
    | "not" "in" list                                        -> not_in_list
    | "is" "set"                                             -> is_set
    | "is" "not" "set"                                       -> is_not_set
    | "contains" STRING                                      -> contains

list: "(" (literal ("," literal)* ","?)? ")"
?literal: STRING                                             -> string
        | NUMBER                                             -> number
        | "true"                                             -> true
        | "false"                                            -> false

tag_ref: "@" code
       | "tag" "(" code ")"
?code: NAME | STRING

?metric: agg_metric
       | days_metric
       | NAME                                                -> attribute_metric
       | tag_ref                                             -> tag_metric
agg_metric: agg "(" source_field [where] [window] ")"
!agg: "count" | "count_distinct" | "sum" | "avg" | "min" | "max"
days_metric: "days_since" "(" first_last NAME [where] ")"
!first_last: "first" | "last"
source_field: NAME ("." field_part)*
field: field_part ("." field_part)*
?field_part: NAME | STRING
where: "where" pred ("and" pred)*
pred: field test
window: "during" "last" NUMBER ("day" | "days")              -> last_days
      | "during" "between" date "and" date                   -> between_dates
      | "during" date "to" date                              -> between_dates
?date: DATE | STRING

NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\\x00-\x1f]|\\["\\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/
NUMBER: /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/
DATE.2: /\d{4}-\d{2}-\d{2}/
COMMENT: /#[^\n]*/
WHITESPACE: /[ \t\f\r\n\u3000]+/
%ignore WHITESPACE
%ignore COMMENT
"""

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
#: Reserved words: a name spelled like one is written as a text (``properties."first"``).
KEYWORDS = frozenset(re.findall(r'"([a-z_]+)"', GRAMMAR))
MAP_LINE_LIMIT = 100


class RuleSyntaxError(ValueError):
    """A rule text that does not parse, with where (1-based) and why."""

    def __init__(self, message: str, line: int, column: int, expected: tuple[str, ...] = ()):
        self.message = message
        self.line = line
        self.column = column
        self.expected = expected
        super().__init__(
            _("line %(line)s, column %(column)s: %(message)s")
            % {"line": line, "column": column, "message": message}
        )

    # The names Python's SyntaxError uses.
    @property
    def lineno(self) -> int:
        return self.line

    @property
    def offset(self) -> int:
        return self.column


class RuleFormatError(ValueError):
    """A document the text syntax cannot spell (it is not a valid rule document)."""


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def _string(token: Token) -> str:
    return json.loads(token)


def _number(token: Token) -> int | float:
    text = str(token)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


def _text(token) -> str:
    """A NAME or STRING token (or an already joined field) as a Python string."""
    if isinstance(token, Token) and token.type == "STRING":
        return _string(token)
    return str(token)


@v_args(inline=True)
class _ToDocument(Transformer):
    # definitions ----------------------------------------------------------
    def start_definition(self, description, body):
        if description is not None:
            body["description"] = description
        return body

    def start_condition(self, cond):
        return cond

    def description(self, token):
        return _string(token)

    def def_condition(self, cond):
        return {"type": "condition", "condition": cond}

    def def_metric(self, metric):
        return {"type": "metric", "metric": metric}

    def def_bucket(self, metric, *buckets):
        return {"type": "bucket", "metric": metric, "buckets": list(buckets)}

    def bucket_item(self, value, low, high):
        bucket = {"value": value}
        if low is not None:
            bucket["min"] = _number(low)
        if high is not None:
            bucket["max"] = _number(high)
        return bucket

    def def_cases(self, *items):
        *cases, default = items
        doc = {"type": "cases", "cases": list(cases)}
        if default is not None:
            doc["default"] = default
        return doc

    def case_item(self, cond, value):
        return {"value": value, "when": cond}

    def else_item(self, value):
        return value

    def def_preference(self, pick, source_field, where, window, mapping):
        source, field = source_field
        doc = {"type": "preference", "pick": pick, "source": source}
        if field is not None:
            doc["field"] = field
        if where is not None:
            doc["where"] = where
        if window is not None:
            doc["window"] = window
        if mapping is not None:
            doc["map"] = mapping
        return doc

    def pick(self, token):
        return str(token)

    def def_attribute(self, name, mapping):
        doc = {"type": "attribute", "attribute": str(name)}
        if mapping is not None:
            doc["map"] = mapping
        return doc

    def def_manual(self):
        return {"type": "manual"}

    def map(self, *entries):
        mapping = {}
        for key_token, value in entries:
            key = _string(key_token)
            if key in mapping:
                raise RuleSyntaxError(
                    _("the key %(key)s appears twice in the map") % {"key": key_token},
                    key_token.line,
                    key_token.column,
                )
            mapping[key] = value
        return mapping

    def map_entry(self, key, value):
        return key, value

    # conditions -----------------------------------------------------------
    def any_chain(self, *items):
        return {"any": list(items)}

    def all_chain(self, *items):
        return {"all": list(items)}

    def negation(self, cond):
        return {"not": cond}

    def all_call(self, items):
        return {"all": items}

    def any_call(self, items):
        return {"any": items}

    def cond_list(self, *items):
        return list(items)

    def attribute_cond(self, name, test):
        return {"attribute": str(name), **test}

    def tag_cond(self, code, test):
        return {"tag": code, **test}

    def metric_cond(self, metric, test):
        return {"metric": metric, **test}

    def eq(self, value):
        return {"op": "eq", "value": value}

    def ne(self, value):
        return {"op": "ne", "value": value}

    def gt(self, token):
        return {"op": "gt", "value": _number(token)}

    def gte(self, token):
        return {"op": "gte", "value": _number(token)}

    def lt(self, token):
        return {"op": "lt", "value": _number(token)}

    def lte(self, token):
        return {"op": "lte", "value": _number(token)}

    def between(self, low, high):
        return {"op": "between", "value": [_number(low), _number(high)]}

    def in_list(self, values):
        return {"op": "in", "value": values}

    def not_in_list(self, values):
        return {"op": "not_in", "value": values}

    def is_set(self):
        return {"op": "is_set", "value": True}

    def is_not_set(self):
        return {"op": "is_set", "value": False}

    def contains(self, token):
        return {"op": "contains", "value": _string(token)}

    def list(self, *values):
        return list(values)

    def string(self, token):
        return _string(token)

    def number(self, token):
        return _number(token)

    def true(self):
        return True

    def false(self):
        return False

    def tag_ref(self, code):
        return _text(code)

    # metrics --------------------------------------------------------------
    def attribute_metric(self, name):
        return {"attribute": str(name)}

    def tag_metric(self, code):
        return {"tag": code}

    def agg_metric(self, agg, source_field, where, window):
        source, field = source_field
        metric = {"agg": agg, "source": source}
        if field is not None:
            metric["field"] = field
        if where is not None:
            metric["where"] = where
        if window is not None:
            metric["window"] = window
        return metric

    def agg(self, token):
        return str(token)

    def days_metric(self, first_last, source, where):
        metric = {"days_since": first_last, "source": str(source)}
        if where is not None:
            metric["where"] = where
        return metric

    def first_last(self, token):
        return str(token)

    def source_field(self, source, *parts):
        return str(source), ".".join(_text(p) for p in parts) if parts else None

    def field(self, *parts):
        return ".".join(_text(p) for p in parts)

    def where(self, *preds):
        return list(preds)

    def pred(self, field, test):
        return {"field": field, **test}

    def last_days(self, token):
        return {"last_days": _number(token)}

    def between_dates(self, start, end):
        return {"between": [_text(start), _text(end)]}


_KEYWORD_TYPES: dict[str, str] = {}


def _reserve_keywords(token: Token) -> Token:
    """Keywords are reserved everywhere: the contextual lexer alone would read ``and``
    as a name where no ``and`` can stand (``and age > 3`` would compare an attribute)."""
    keyword_type = _KEYWORD_TYPES.get(token)
    return Token.new_borrow_pos(keyword_type, token, token) if keyword_type else token


@cache
def _parser() -> Lark:
    parser = Lark(
        GRAMMAR,
        parser="lalr",
        lexer="contextual",
        start=["start_definition", "start_condition"],
        transformer=_ToDocument(),
        maybe_placeholders=True,
        lexer_callbacks={"NAME": _reserve_keywords},
    )
    _KEYWORD_TYPES.update(
        (t.pattern.value, t.name)
        for t in parser.terminals
        if isinstance(t.pattern, PatternStr) and t.pattern.value in KEYWORDS
    )
    return parser


def parse_definition(text: str) -> dict:
    """The rule document a text spells; raises :class:`RuleSyntaxError`."""
    return _parse(text, "start_definition")


def parse_condition(text: str) -> dict:
    """The condition (COND) a text spells, e.g. an audience expression."""
    return _parse(text, "start_condition")


def _parse(text: str, start: str) -> dict:
    if not isinstance(text, str):
        raise TypeError("the rule text must be a str")
    parser = _parser()
    interactive = parser.parse_interactive(text, start=start)
    tokens: list[Token] = []
    try:
        for token in interactive.iter_parse():
            tokens.append(token)
        return interactive.feed_eof(tokens[-1] if tokens else None)
    except UnexpectedCharacters as exc:
        raise _character_error(text, exc, _accepts(tokens, start)) from None
    except UnexpectedToken as exc:
        fed = tokens[:-1] if tokens and tokens[-1] is exc.token else tokens
        raise _token_error(exc, fed, _accepts(fed, start)) from None
    except UnexpectedInput as exc:  # pragma: no cover - LALR raises the two above
        raise RuleSyntaxError(str(exc), exc.line, exc.column) from None


# ---------------------------------------------------------------------------
# Error messages
# ---------------------------------------------------------------------------


def _accepts(fed: list[Token], start: str) -> set[str]:
    """The terminals that may follow the tokens the parser accepted.

    LALR merges lookaheads, so an error's ``expected`` may name tokens that only fit in
    another context, and a failed token may already have made the parser reduce; a
    fresh parser fed the accepted tokens tries each terminal on a copy of itself.
    """
    interactive = _parser().parse_interactive("", start=start)
    for token in fed:
        interactive.feed_token(token)
    return interactive.accepts()


FULL_WIDTH = {
    "（": "(", "）": ")", "，": ",", "：": ":", "；": ";", "“": '"', "”": '"', "‘": '"', "’": '"',
    "＝": "=", "＞": ">", "＜": "<", "！": "!", "｛": "{", "｝": "}", "＠": "@", "。": ".", "、": ",",
    "【": "(", "】": ")", "「": '"', "」": '"', "《": "<", "》": ">",
}  # fmt: skip


def _literal_of(name: str) -> str | None:
    terminal = _parser().get_terminal(name) if name != "$END" else None
    if terminal is not None and isinstance(terminal.pattern, PatternStr):
        return terminal.pattern.value
    return None


def _quote(text: str) -> str:
    return f"'{text}'"


def _show(token: Token) -> str:
    value = str(token)
    if len(value) > 30:
        value = value[:29] + "…"
    return value if token.type == "STRING" else _quote(value)


def _join_or(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return _("%(items)s or %(last)s") % {"items": ", ".join(items[:-1]), "last": items[-1]}


def _groups():
    comparison = {"=", "==", "!=", ">", ">=", "<", "<=", "between", "in", "not", "is", "contains"}
    metric = {*AGGREGATIONS, "days_since", "NAME", "@", "tag"}
    return [
        (
            set(DEFINITION_TYPES),
            _("a definition (condition:, metric:, bucket, cases:, preference:, attribute: or manual)"),
        ),
        (metric | {"not", "(", "all", "any", "metric"}, _("a condition")),
        (metric, _("a metric")),
        (comparison, _("a comparison (=, !=, >, >=, <, <=, between, in, not in, is set, contains)")),
        ({"STRING", "NUMBER", "true", "false"}, _('a value (a "text", a number, true or false)')),
    ]


def _describe_expected(names) -> list[str]:
    """Readable names of what the parser would have accepted, grouped where possible."""
    wanted = {}
    for name in names:
        literal = _literal_of(name)
        wanted[literal if literal is not None else name] = name
    described = []
    for members, text in _groups():
        if members <= set(wanted):
            described.append(text)
            for member in members:
                wanted.pop(member)
    singles = {
        "STRING": _('a "text"'),
        "NUMBER": _("a number"),
        "NAME": _("a name"),
        "DATE": _("a date like 2026-01-31"),
        "$END": _("the end of the text"),
    }
    end = wanted.pop("$END", None)
    for key in sorted(wanted, key=lambda k: (k in singles, k)):
        described.append(singles.get(key, _quote(key)))
    if end:
        described.append(singles["$END"])
    return described


def _open_parenthesis(tokens: list[Token]) -> Token | None:
    stack: list[Token] = []
    for token in tokens:
        if token.type == "LPAR":
            stack.append(token)
        elif token.type == "RPAR" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _token_error(exc: UnexpectedToken, fed: list[Token], accepts: set[str]) -> RuleSyntaxError:
    token = exc.token
    previous = fed[-1] if fed else None
    expected = tuple(_describe_expected(accepts))
    wanted = _join_or(list(expected))
    if token.type == "$END":
        opening = _open_parenthesis(fed)
        if opening is not None and "RPAR" in accepts:
            return RuleSyntaxError(
                _("unbalanced parenthesis: this '(' is never closed; expected %(wanted)s")
                % {"wanted": wanted},
                opening.line,
                opening.column,
                expected,
            )
        if previous is None:
            return RuleSyntaxError(
                _("the text is empty; expected %(wanted)s") % {"wanted": wanted}, 1, 1, expected
            )
        return RuleSyntaxError(
            _("expected %(wanted)s after %(previous)s") % {"wanted": wanted, "previous": _show(previous)},
            previous.end_line,
            previous.end_column,
            expected,
        )
    if token.type == "RPAR" and _open_parenthesis(fed) is None:
        return RuleSyntaxError(
            _("unbalanced parenthesis: this ')' has no matching '('"), token.line, token.column, expected
        )
    found = _show(token)
    if previous is not None:
        found = _("%(found)s after %(previous)s") % {"found": found, "previous": _show(previous)}
    if token.type == "NAME":
        message = _("unknown keyword %(found)s; expected %(wanted)s") % {"found": found, "wanted": wanted}
        if "STRING" in accepts and "DATE" not in accepts:
            message += _("; texts are written in double quotes: %(quoted)s") % {
                "quoted": json.dumps(str(token), ensure_ascii=False)
            }
    else:
        message = _("unexpected %(found)s; expected %(wanted)s") % {"found": found, "wanted": wanted}
    return RuleSyntaxError(message, token.line, token.column, expected)


def _character_error(text: str, exc: UnexpectedCharacters, accepts: set[str]) -> RuleSyntaxError:
    char = exc.char
    line, column = exc.line, exc.column
    expected = tuple(_describe_expected(accepts))
    if char == '"':
        return _string_error(text, exc.pos_in_stream, line, column)
    if char in FULL_WIDTH:
        message = _("full-width %(char)s is not allowed here; use %(ascii)s") % {
            "char": _quote(char),
            "ascii": _quote(FULL_WIDTH[char]),
        }
    elif char == "'":
        message = _('texts are written in double quotes ("…"), not single quotes')
    elif char in "&|":
        message = _("unexpected character %(char)s; write 'and' / 'or'") % {"char": _quote(char)}
    elif ord(char) > 127:
        message = _(
            "unexpected character %(char)s; names are ASCII letters, digits and _, "
            'and Chinese text goes in double quotes ("…")'
        ) % {"char": _quote(char)}
    else:
        message = _("unexpected character %(char)s; expected %(wanted)s") % {
            "char": _quote(char),
            "wanted": _join_or(list(expected)),
        }
    return RuleSyntaxError(message, line, column, expected)


def _string_error(text: str, pos: int, line: int, column: int) -> RuleSyntaxError:
    """Why the text starting with the double quote at ``pos`` is not a valid text."""
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\n":
            break
        if char == "\\":
            escape = text[i + 1 : i + 2]
            if escape and escape in '"\\/bfnrt':
                i += 2
                continue
            if escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                i += 6
                continue
            return RuleSyntaxError(
                _("invalid escape %(escape)s in a text; use \\\\ for a backslash")
                % {"escape": _quote("\\" + escape)},
                line,
                column + (i - pos),
            )
        if ord(char) < 0x20:
            return RuleSyntaxError(
                _("a text cannot contain a control character such as a tab; use \\t or \\n"),
                line,
                column + (i - pos),
            )
        if char == '"':  # pragma: no cover - a closed, valid text would have matched
            break
        i += 1
    return RuleSyntaxError(_('unterminated text: the closing " is missing'), line, column)


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


def _fail(message: str, node) -> RuleFormatError:
    try:
        shown = json.dumps(node, ensure_ascii=False, default=repr)
    except ValueError:  # a circular structure
        shown = repr(node)
    if len(shown) > 200:
        shown = shown[:199] + "…"
    return RuleFormatError(f"{message}: {shown}")


def _check_keys(node, allowed, required, what):
    if not isinstance(node, dict):
        raise _fail(_("expected %(what)s object") % {"what": what}, node)
    extra = set(node) - set(allowed)
    missing = [k for k in required if k not in node]
    if extra or missing:
        raise _fail(_("cannot write this %(what)s as text") % {"what": what}, node)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt_number(value) -> str:
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        raise _fail(_("expected a number"), value)
    return str(value) if isinstance(value, int) else repr(value)


def _fmt_string(value) -> str:
    if not isinstance(value, str):
        raise _fail(_("expected a text"), value)
    return json.dumps(value, ensure_ascii=False)


def _fmt_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _fmt_string(value)
    return _fmt_number(value)


def _fmt_name(value) -> str:
    if not _is_name(value):
        raise _fail(_("expected an ASCII name that is not a keyword"), value)
    return value


def _is_name(value) -> bool:
    return isinstance(value, str) and bool(NAME_RE.match(value)) and value not in KEYWORDS


def _fmt_code(value) -> str:
    return value if _is_name(value) else _fmt_string(value)


def _fmt_field(value) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(_("expected a field"), value)
    if all(_is_name(part) for part in value.split(".")):
        return value
    head, _dot, rest = value.partition(".")
    if rest and _is_name(head):
        return f"{head}.{_fmt_string(rest)}"
    return _fmt_string(value)


def _fmt_test(node) -> str:
    op, value = node.get("op"), node.get("value")
    if not isinstance(op, str):
        raise _fail(_("unknown operator"), node)
    if op == "is_set":
        if "value" in node and not isinstance(value, bool):
            raise _fail(_("'is_set' takes true or false"), node)
        return "is set" if value is not False else "is not set"
    if "value" not in node:
        raise _fail(_("missing 'value'"), node)
    symbols = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    if op in ("eq", "ne"):
        return f"{symbols[op]} {_fmt_literal(value)}"
    if op in symbols:
        return f"{symbols[op]} {_fmt_number(value)}"
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(_("'between' takes two numbers"), node)
        return f"between {_fmt_number(value[0])} and {_fmt_number(value[1])}"
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise _fail(_("expected a list"), node)
        items = "(" + ", ".join(_fmt_literal(v) for v in value) + ")"
        return f"in {items}" if op == "in" else f"not in {items}"
    if op == "contains":
        return f"contains {_fmt_string(value)}"
    raise _fail(_("unknown operator"), node)


def _fmt_where(preds) -> str:
    if not isinstance(preds, list):
        raise _fail(_("expected a list of field conditions"), preds)
    parts = []
    for pred in preds:
        _check_keys(pred, ("field", "op", "value"), ("field", "op"), "field condition")
        parts.append(f"{_fmt_field(pred['field'])} {_fmt_test(pred)}")
    return " where " + " and ".join(parts) if parts else ""


def _fmt_window(window) -> str:
    if isinstance(window, dict) and set(window) == {"last_days"}:
        days = window["last_days"]
        unit = "day" if days == 1 else "days"
        return f" during last {_fmt_number(days)} {unit}"
    if isinstance(window, dict) and set(window) == {"between"}:
        bounds = window["between"]
        if isinstance(bounds, list) and len(bounds) == 2:
            dates = [b if isinstance(b, str) and DATE_RE.match(b) else _fmt_string(b) for b in bounds]
            return f" during {dates[0]} to {dates[1]}"
    raise _fail(_("cannot write this window as text"), window)


def _fmt_source(node, field_key="field") -> str:
    text = _fmt_name(node.get("source"))
    if field_key in node:
        text += "." + _fmt_field(node[field_key])
    return text


def _fmt_metric(node, in_condition=False) -> str:
    if not isinstance(node, dict):
        raise _fail(_("expected a metric object"), node)
    if "agg" in node:
        _check_keys(node, ("agg", "source", "field", "where", "window"), ("source",), "metric")
        if node["agg"] not in AGGREGATIONS:
            raise _fail(_("unknown aggregation"), node)
        text = f"{node['agg']}({_fmt_source(node)}{_fmt_where(node.get('where', []))}"
        if "window" in node:
            text += _fmt_window(node["window"])
        return text + ")"
    if "days_since" in node:
        _check_keys(node, ("days_since", "source", "where"), ("source",), "metric")
        if node["days_since"] not in ("first", "last"):
            raise _fail(_("'days_since' takes first or last"), node)
        return (
            f"days_since({node['days_since']} {_fmt_name(node['source'])}{_fmt_where(node.get('where', []))})"
        )
    if "attribute" in node:
        _check_keys(node, ("attribute",), (), "metric")
        text = _fmt_name(node["attribute"])
    elif "tag" in node:
        _check_keys(node, ("tag",), (), "metric")
        text = f"tag({_fmt_code(node['tag'])})"
    else:
        raise _fail(_("cannot write this metric as text"), node)
    return f"metric({text})" if in_condition else text


def _fmt_cond(node, context="top") -> str:
    """``context``: where the condition stands (top, and, or, not) — decides the parentheses."""
    if not isinstance(node, dict) or not node:
        raise _fail(_("expected a condition object"), node)
    for group, word in (("all", "and"), ("any", "or")):
        if group in node:
            _check_keys(node, (group,), (), "condition")
            items = node[group]
            if not isinstance(items, list):
                raise _fail(_("expected a list of conditions"), node)
            if len(items) < 2:
                return f"{group}({', '.join(_fmt_cond(i) for i in items)})"
            text = f" {word} ".join(_fmt_cond(i, word) for i in items)
            # Nested chains get parentheses: one of the same word would merge with the
            # outer chain, "or" inside "and" (or anything under "not") would bind
            # differently, and "(A and B)" inside "or" reads more easily than relying
            # on precedence (it spells the same document).
            return text if context == "top" else f"({text})"
    if "not" in node:
        _check_keys(node, ("not",), (), "condition")
        return f"not {_fmt_cond(node['not'], 'not')}"
    if "attribute" in node:
        _check_keys(node, ("attribute", "op", "value"), ("op",), "condition")
        return f"{_fmt_name(node['attribute'])} {_fmt_test(node)}"
    if "tag" in node:
        _check_keys(node, ("tag", "op", "value"), ("op",), "condition")
        return f"tag({_fmt_code(node['tag'])}) {_fmt_test(node)}"
    if "metric" in node:
        _check_keys(node, ("metric", "op", "value"), ("op",), "condition")
        return f"{_fmt_metric(node['metric'], in_condition=True)} {_fmt_test(node)}"
    raise _fail(_("cannot write this condition as text"), node)


def _fmt_map(mapping) -> str:
    if not isinstance(mapping, dict):
        raise _fail(_("expected a map object"), mapping)
    entries = [f"{_fmt_string(k)}: {_fmt_literal(v)}" for k, v in mapping.items()]
    line = " map {" + ", ".join(entries) + "}"
    if len(line) <= MAP_LINE_LIMIT:
        return line
    return " map {\n" + "".join(f"  {entry},\n" for entry in entries) + "}"


def format_condition(cond) -> str:
    """The canonical text of a condition (COND); raises :class:`RuleFormatError`."""
    return _fmt_cond(cond)


def format_definition(doc) -> str:
    """The canonical text of a rule document; raises :class:`RuleFormatError`."""
    if not isinstance(doc, dict) or doc.get("type") not in DEFINITION_TYPES:
        raise _fail(_("expected a rule document with a known 'type'"), doc)
    kind = doc["type"]
    head = ""
    if "description" in doc:
        head = f"description {_fmt_string(doc['description'])}\n"
    if kind == "condition":
        _check_keys(doc, ("type", "condition", "description"), ("condition",), "definition")
        body = f"condition: {_fmt_cond(doc['condition'])}"
    elif kind == "metric":
        _check_keys(doc, ("type", "metric", "description"), ("metric",), "definition")
        body = f"metric: {_fmt_metric(doc['metric'])}"
    elif kind == "bucket":
        _check_keys(doc, ("type", "metric", "buckets", "description"), ("metric", "buckets"), "definition")
        if not isinstance(doc["buckets"], list):
            raise _fail(_("expected a list of buckets"), doc)
        lines = [f"bucket {_fmt_metric(doc['metric'])}:"]
        for bucket in doc["buckets"]:
            _check_keys(bucket, ("value", "min", "max"), ("value",), "bucket")
            line = f"  {_fmt_literal(bucket['value'])}"
            if bucket.get("min") is not None:
                line += f" from {_fmt_number(bucket['min'])}"
            if bucket.get("max") is not None:
                line += f" below {_fmt_number(bucket['max'])}"
            lines.append(line)
        body = "\n".join(lines)
    elif kind == "cases":
        _check_keys(doc, ("type", "cases", "default", "description"), ("cases",), "definition")
        if not isinstance(doc["cases"], list):
            raise _fail(_("expected a list of cases"), doc)
        lines = ["cases:"]
        for case in doc["cases"]:
            _check_keys(case, ("value", "when"), ("value", "when"), "case")
            lines.append(f"  when {_fmt_cond(case['when'])} then {_fmt_literal(case['value'])}")
        if doc.get("default") is not None:
            lines.append(f"  else {_fmt_literal(doc['default'])}")
        body = "\n".join(lines)
    elif kind == "preference":
        keys = ("type", "pick", "source", "field", "where", "window", "map", "description")
        _check_keys(doc, keys, ("pick", "source"), "definition")
        if doc["pick"] not in PICKS:
            raise _fail(_("unknown pick"), doc)
        body = f"preference: {doc['pick']}({_fmt_source(doc)}{_fmt_where(doc.get('where', []))}"
        if "window" in doc:
            body += _fmt_window(doc["window"])
        body += ")"
        if doc.get("map") is not None:
            body += _fmt_map(doc["map"])
    elif kind == "attribute":
        _check_keys(doc, ("type", "attribute", "map", "description"), ("attribute",), "definition")
        body = f"attribute: {_fmt_name(doc['attribute'])}"
        if doc.get("map") is not None:
            body += _fmt_map(doc["map"])
    else:
        _check_keys(doc, ("type", "description"), (), "definition")
        body = "manual"
    return head + body
