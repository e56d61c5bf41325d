"""CloudWatch Logs filter patterns (Amazon CloudWatch Logs User Guide, "Filter pattern
syntax for metric filters, subscription filters, and filter log events"), as the log
store applies them to its events.

- Terms: ``ERROR``, ``"a phrase"``, ``?any ?of``, ``-excluded`` match text in the message
  (case-sensitive); they become an SQL condition.
- JSON: ``{ $.level = "ERROR" && $.latency > 100 }`` match messages that are JSON
  objects: selectors ``$.a.b``, ``$.a[0]``; ``=`` and ``!=`` on strings (``*`` a
  wildcard) and numbers; ``<``, ``<=``, ``>``, ``>=`` on numbers; ``IS NULL``, ``IS TRUE``,
  ``IS FALSE``, ``EXISTS``, ``NOT EXISTS``; ``&&`` before ``||``, and parentheses.
- Space-delimited: ``[ip, user, ..., status = 4*, bytes > 1000]`` match messages of that
  many fields (words, "quoted strings" or [bracketed text]; ``...`` any number of
  them), each named field meeting its conditions (joined with ``&&`` or ``||``).

JSON and space-delimited patterns are tested in Python on each message; the store calls
their ``match`` from its SQL query.  ``compile_pattern`` tests any pattern in Python and
gives the values a match captured (``$.a.b`` of a JSON message, ``$name`` of a
space-delimited one), as metric filters read their value and dimensions.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

Match = Callable[[str], bool]


class Filter(NamedTuple):
    """An SQL condition on ``message`` and its parameters; ``match`` (if any) is the
    predicate the condition calls as ``fastinvoke_match(message)``."""

    condition: str
    params: list[Any]
    match: Match | None = None


MATCH_FUNCTION = "fastinvoke_match"
_TERM = re.compile(r'([?-]?)(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))(?=\s|$)')
# A word may hold [N] (an array index in a selector: $.a[0].b).
_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>&&|\|\||!=|<=|>=|=|<|>)|'
                    r'(?P<word>(?:[^\s(){}\[\],=!<>&|"]|\[\d+\])+)|(?P<punct>[(){}\[\],]))')
_SELECTOR = re.compile(r"\$((?:\.[^.\[\]\s]+|\[\d+\])*)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_FIELD = re.compile(r'"([^"]*)"|\[([^\]]*)\]|(\S+)')
MISSING = object()


class Terms(NamedTuple):
    """A terms pattern: every ``present`` term, none of ``absent``, at least one of
    ``any_of`` if there are any."""

    present: list[str]
    absent: list[str]
    any_of: list[str]


Captures = dict[str, Any]  # what a match captured: {"$": document} or {"$name": field}


class Pattern(NamedTuple):
    """A pattern tested in Python: ``captures(message)`` is None when the message does
    not match, else the values ``value`` reads; ``kind`` is "terms", "json" or
    "space-delimited", and ``names`` a space-delimited pattern's field names."""

    kind: str
    names: frozenset[str]
    captures: Callable[[str], Captures | None]


def compile_filter(pattern: str | None) -> Filter:
    """The filter for ``pattern`` (None or blank: every event); ValueError if invalid."""
    text = (pattern or "").strip()
    if text.startswith(("{", "[")):
        captures = compile_pattern(pattern).captures
        return Filter(f"{MATCH_FUNCTION}(message)", [],
                      lambda message: captures(message) is not None)
    return _terms_condition(_terms(text, pattern))


def compile_pattern(pattern: str | None) -> Pattern:
    """``pattern`` to test in Python (None or blank: every event); ValueError if invalid."""
    text = (pattern or "").strip()
    if text.startswith("{"):
        test = _Parser(text, pattern).json()

        def document(message: str) -> Captures | None:
            try:
                found = json.loads(message)
            except (ValueError, RecursionError):  # (deeply nested JSON)
                return None
            return {"$": found} if isinstance(found, dict) and test(found) else None

        return Pattern("json", frozenset(), document)
    if text.startswith("["):
        names, checks = _Parser(text, pattern).fields()

        def fields(message: str) -> Captures | None:
            values = [a or b or c for a, b, c in _FIELD.findall(message)]
            return _bind(names, checks, values)

        return Pattern("space-delimited", frozenset(names) - {"..."}, fields)
    terms = _terms(text, pattern)

    def contains(message: str) -> Captures | None:
        if all(term in message for term in terms.present) and not any(
                term in message for term in terms.absent) and (
                not terms.any_of or any(term in message for term in terms.any_of)):
            return {}
        return None

    return Pattern("terms", frozenset(), contains)


def value(captures: Captures, selector: str) -> Any:
    """The value ``selector`` (``$.a.b[0]`` or ``$name``) names in a match's captures, or
    ``MISSING``."""
    if selector.startswith("$.") or selector.startswith("$["):
        return _select(captures.get("$", MISSING), selector_path(selector))
    return captures.get(selector[1:], MISSING)


def selector_path(selector: str) -> list[str | int]:
    """The steps of a JSON selector (``$.a[0].b``: ["a", 0, "b"]); ValueError if it is
    none."""
    found = _SELECTOR.fullmatch(selector)
    if found is None:
        raise ValueError(f"{selector!r} is not a JSON selector such as $.level")
    return [int(part[1:-1]) if part.startswith("[") else part[1:]
            for part in re.findall(r"\.[^.\[\]]+|\[\d+\]", found[1])]


def _terms(text: str, pattern: str | None) -> Terms:
    if not re.fullmatch(rf"(?:\s*{_TERM.pattern})*\s*", text):
        raise ValueError(f"invalid filter pattern {pattern!r}: expected terms, -terms, ?terms "
                         'or "quoted phrases" (with \\" for a quote) separated by spaces, a '
                         "JSON pattern { $.key = value } or a space-delimited one [a, b, ...]")
    terms = Terms([], [], [])
    for prefix, phrase, word in _TERM.findall(text):
        term = re.sub(r"\\(.)", r"\1", phrase) if word == "" else word
        {"": terms.present, "-": terms.absent, "?": terms.any_of}[prefix].append(term)
    return terms


def _terms_condition(terms: Terms) -> Filter:
    # instr, unlike LIKE, is case-sensitive and has no wildcards to escape
    must = ["instr(message, ?) > 0"] * len(terms.present) + \
        ["instr(message, ?) = 0"] * len(terms.absent)
    if terms.any_of:
        must.append("(" + " OR ".join(["instr(message, ?) > 0"] * len(terms.any_of)) + ")")
    return Filter(" AND ".join(must), [*terms.present, *terms.absent, *terms.any_of])


class _Parser:
    """Recursive descent over the tokens of a JSON or space-delimited pattern."""

    def __init__(self, text: str, pattern: str | None) -> None:
        self.pattern = pattern
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            found = _TOKEN.match(text, position)
            if found is None or found.end() == position:
                if text[position:].strip():
                    raise self.error(f"unexpected {text[position:position + 10]!r}")
                break
            kind = found.lastgroup
            assert kind is not None
            self.tokens.append((kind, found[kind]))
            position = found.end()
        self.at = 0

    def error(self, why: str) -> ValueError:
        return ValueError(f"invalid filter pattern {self.pattern!r}: {why}")

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at == len(self.tokens):
            raise self.error(f"it ends where {expected or 'more'} was expected")
        token = self.tokens[self.at]
        if expected is not None and token[1].upper() != expected:
            raise self.error(f"expected {expected}, found {token[1]!r}")
        self.at += 1
        return token

    # -- JSON patterns ----------------------------------------------------------------------

    def json(self) -> Callable[[Any], bool]:
        """The test of a JSON pattern, on a decoded document."""
        self.take("{")
        test = self.either(self.json_term)
        self.take("}")
        if self.peek() is not None:
            raise self.error("text after the closing }")
        return test

    def either(self, term: Callable[[], Callable[[Any], bool]]) -> Callable[[Any], bool]:
        """``a && b || c``: && binds tighter than ||."""
        alternatives = [self.both(term)]
        while self.peek() == "||":
            self.take()
            alternatives.append(self.both(term))
        return alternatives[0] if len(alternatives) == 1 else \
            (lambda value: any(test(value) for test in alternatives))

    def both(self, term: Callable[[], Callable[[Any], bool]]) -> Callable[[Any], bool]:
        tests = [term()]
        while self.peek() == "&&":
            self.take()
            tests.append(term())
        return tests[0] if len(tests) == 1 else (lambda value: all(test(value) for test in tests))

    def json_term(self) -> Callable[[Any], bool]:
        if self.peek() == "(":
            self.take()
            test = self.either(self.json_term)
            self.take(")")
            return test
        kind, text = self.take()
        if kind != "word" or _SELECTOR.fullmatch(text) is None:
            raise self.error(f"expected a selector such as $.level, found {text!r}")
        path = selector_path(text)
        check = self.json_condition()
        return lambda document: check(_select(document, path))

    def json_condition(self) -> Callable[[Any], bool]:
        word = (self.peek() or "").upper()
        if word == "IS":
            self.take()
            state = self.take()[1].upper()
            wanted = {"NULL": None, "TRUE": True, "FALSE": False}
            if state not in wanted:
                raise self.error(f"IS takes NULL, TRUE or FALSE, not {state!r}")
            return lambda value: value is wanted[state]
        if word == "EXISTS":
            self.take()
            return lambda value: value is not MISSING
        if word == "NOT":
            self.take()
            self.take("EXISTS")
            return lambda value: value is MISSING
        return self.comparison()

    # -- space-delimited patterns -----------------------------------------------------------

    def fields(self) -> tuple[list[str], list[Callable[[str], bool] | None]]:
        """A space-delimited pattern's field names and each one's test (if any)."""
        self.take("[")
        names: list[str] = []
        checks: list[Callable[[str], bool] | None] = []
        while self.peek() != "]":
            if names:
                self.take(",")
            name = self.take()[1]
            names.append(name)
            checks.append(None if name == "..." or self.peek() in (",", "]")
                          else self.field_conditions(name))
        self.take("]")
        if self.peek() is not None:
            raise self.error("text after the closing ]")
        return names, checks

    def field_conditions(self, name: str) -> Callable[[str], bool]:
        """``status = 4* || status = 5*``: conditions on the field just named."""
        def term() -> Callable[[Any], bool]:
            if self.peek() == name:  # a later condition names the field again
                self.take()
            return self.comparison(from_text=True)

        return self.either(term)

    # -- both ---------------------------------------------------------------------------------

    def comparison(self, from_text: bool = False) -> Callable[[Any], bool]:
        """``op value``: on a JSON value, or on a field's text (``from_text``)."""
        kind, op = self.take()
        if kind != "op" or op in ("&&", "||"):
            raise self.error(f"expected =, !=, <, <=, > or >=, found {op!r}")
        kind, raw = self.take()
        if kind not in ("string", "word"):
            raise self.error(f"expected a value after {op}, found {raw!r}")
        if kind == "word" and _NUMBER.fullmatch(raw):
            number = float(raw)
            compare = _NUMERIC[op]

            def numeric(value: Any) -> bool:
                if from_text:
                    try:
                        value = float(value)
                    except ValueError:
                        return False
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    return False
                return compare(value, number)

            return numeric
        if op not in ("=", "!="):
            raise self.error(f"{op} compares numbers; {raw!r} is not one")
        wanted = json.loads(raw) if kind == "string" else raw
        equal = op == "="

        def textual(value: Any) -> bool:
            if not isinstance(value, str):
                return False
            return fnmatch.fnmatchcase(value, wanted) == equal if "*" in wanted else \
                (value == wanted) == equal

        return textual


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _select(document: Any, path: list[str | int]) -> Any:
    """The value at ``path`` in ``document``, or ``MISSING``."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(document, list) or step >= len(document):
                return MISSING
        elif not isinstance(document, dict) or step not in document:
            return MISSING
        document = document[step]
    return document


def _bind(names: list[str], checks: list[Callable[[str], bool] | None],
          values: list[str]) -> Captures | None:
    """Each name's value if ``values`` (a message's fields) fit ``names`` in order,
    ``...`` taking any number of them; else None."""
    if not names:
        return None if values else {}
    if names[0] == "...":
        return next((bound for skip in range(len(values) + 1)
                     if (bound := _bind(names[1:], checks[1:], values[skip:])) is not None),
                    None)
    check = checks[0]
    if not values or not (check is None or check(values[0])):
        return None
    bound = _bind(names[1:], checks[1:], values[1:])
    if bound is not None:
        bound[names[0]] = values[0]
    return bound
