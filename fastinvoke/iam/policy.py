"""Identity-based IAM policy documents: read, checked and evaluated as IAM does.

A document (IAM User Guide, "IAM JSON policy element reference") holds statements with an
``Effect`` (``Allow`` or ``Deny``), ``Action`` or ``NotAction`` and ``Resource`` or
``NotResource``, each a string or a list, with ``*`` and ``?`` wildcards (actions match
without regard to case, resources with it).  Evaluation ("Policy evaluation logic"): an
explicit ``Deny`` that matches wins; else a matching ``Allow`` allows; else the request is
implicitly denied.

A ``Condition`` is not evaluated locally.  So that a policy never grants more here than
on AWS, an ``Allow`` with a condition is not applied and a ``Deny`` with one always is;
reading such a statement says so (``Policy.warnings``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any

from ..errors import ServiceError

VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource",
                   "Condition", "Principal", "NotPrincipal"}
_ACTION = re.compile(r"^[a-zA-Z0-9*?-]+:[a-zA-Z0-9*?]*$")


class MalformedPolicyDocumentException(ServiceError):
    """IAM's answer to a policy it cannot read; the message says where."""

    status = 400


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple[str, ...]
    not_action: bool  # ``actions`` are NotAction's
    resources: tuple[str, ...]
    not_resource: bool
    conditional: bool  # it has a Condition (not evaluated: see the module's text)

    def matches(self, action: str, resource: str) -> bool:
        acted = any(_matches(pattern, action, True) for pattern in self.actions)
        if acted == self.not_action:
            return False
        hit = any(_matches(pattern, resource, False) for pattern in self.resources)
        return hit != self.not_resource


@dataclass(frozen=True)
class Policy:
    """A policy document, read; ``warnings`` say what IAM accepts but may not mean what
    its author thinks (unknown Lambda actions) or is not evaluated here (conditions)."""

    name: str
    statements: tuple[Statement, ...]
    warnings: tuple[str, ...] = field(default=())

    @classmethod
    def read(cls, name: str, document: str | dict[str, Any],
             known_actions: frozenset[str] = frozenset()) -> Policy:
        """``document`` as JSON text or already decoded.  ``known_actions`` are the
        lower-case actions of the services fastinvoke serves (``lambda:invokefunction``):
        another action of those services is accepted with a warning, as IAM accepts it."""
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except json.JSONDecodeError as exc:
                raise MalformedPolicyDocumentException(
                    f"Syntax errors in policy {name}: {exc.msg} at line {exc.lineno}, "
                    f"column {exc.colno}") from None
        return _Reader(name, known_actions).document(document)


def evaluate(policies: list[Policy] | tuple[Policy, ...], action: str,
             resource: str) -> Decision:
    """IAM's decision on ``action`` (``lambda:InvokeFunction``) on ``resource`` (an ARN)
    for a principal with these identity-based ``policies``."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if not statement.matches(action, resource):
                continue
            if not statement.allow:
                return Decision.EXPLICIT_DENY
            if not statement.conditional:
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


@lru_cache(maxsize=1024)
def _pattern(pattern: str, fold_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char)
                    for char in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if fold_case else re.DOTALL)


def _matches(pattern: str, value: str, fold_case: bool) -> bool:
    return _pattern(pattern, fold_case).fullmatch(value) is not None


class _Reader:
    """Checks a decoded document, naming where it is wrong (``Statement[1].Effect``)."""

    def __init__(self, name: str, known_actions: frozenset[str]) -> None:
        self.name = name
        self.known = known_actions
        self.warnings: list[str] = []

    def fail(self, where: str, why: str) -> MalformedPolicyDocumentException:
        return MalformedPolicyDocumentException(f"Policy {self.name}, {where}: {why}")

    def document(self, document: Any) -> Policy:
        if not isinstance(document, dict):
            raise self.fail("the document", "must be a JSON object with a Statement")
        unknown = set(document) - {"Version", "Id", "Statement"}
        if unknown:
            raise self.fail(sorted(unknown)[0], "is not a policy element (Version, Id, "
                            "Statement)")
        version = document.get("Version", VERSIONS[1])
        if version not in VERSIONS:
            raise self.fail("Version", f"'{version}' is not one of {', '.join(VERSIONS)}")
        statements = document.get("Statement")
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            raise self.fail("Statement", "must be a statement or a non-empty list of them")
        read = tuple(self.statement(f"Statement[{index}]", each)
                     for index, each in enumerate(statements))
        return Policy(self.name, read, tuple(self.warnings))

    def statement(self, where: str, statement: Any) -> Statement:
        if not isinstance(statement, dict):
            raise self.fail(where, "must be a JSON object")
        unknown = set(statement) - _STATEMENT_KEYS
        if unknown:
            raise self.fail(f"{where}.{sorted(unknown)[0]}", "is not a statement element")
        if "Principal" in statement or "NotPrincipal" in statement:
            raise self.fail(where, "Policy document should not specify a principal (an "
                            "identity-based policy applies to its role)")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise self.fail(f"{where}.Effect", "must be Allow or Deny")
        actions, not_action = self.either(where, statement, "Action", "NotAction")
        for action in actions:
            if action != "*" and not _ACTION.match(action):
                raise self.fail(f"{where}.{'NotAction' if not_action else 'Action'}",
                                f"'{action}': actions must be prefaced by a service, e.g. "
                                "lambda:InvokeFunction")
            self.check_known(where, action)
        resources, not_resource = self.either(where, statement, "Resource", "NotResource")
        for resource in resources:
            if resource != "*" and not resource.startswith("arn:"):
                raise self.fail(f"{where}.{'NotResource' if not_resource else 'Resource'}",
                                f"'{resource}' must be in ARN format or \"*\"")
        conditional = bool(statement.get("Condition"))
        if conditional:
            self.warnings.append(
                f"policy {self.name}, {where}: its Condition is not evaluated locally, so "
                + ("this Deny always applies" if effect == "Deny"
                   else "this Allow is not applied"))
        return Statement(effect == "Allow", actions, not_action, resources, not_resource,
                         conditional)

    def either(self, where: str, statement: dict[str, Any], key: str,
               negated: str) -> tuple[tuple[str, ...], bool]:
        if (key in statement) == (negated in statement):
            raise self.fail(where, f"must have either {key} or {negated}")
        value = statement[key] if key in statement else statement[negated]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(
                isinstance(each, str) and each for each in values):
            raise self.fail(f"{where}.{key if key in statement else negated}",
                            "must be a string or a non-empty list of strings")
        return tuple(values), negated in statement

    def check_known(self, where: str, action: str) -> None:
        service = action.lower().partition(":")[0]
        if not self.known or "*" in action or "?" in action:
            return
        if any(known.startswith(service + ":") for known in self.known) \
                and action.lower() not in self.known:
            self.warnings.append(f"policy {self.name}, {where}: {action} is not an action "
                                 f"of {service} (IAM accepts it; it allows nothing)")
