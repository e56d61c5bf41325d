"""The roles this server knows, by ARN, with their policies.

A role is known from a SAM template (``Role`` naming an ``AWS::IAM::Role`` of the template,
or ``Policies``), from a roles file (``serve --roles FILE``) or from the embedded API
(``Invoker.put_role``).  A function whose role is known runs with that role's
credentials and its calls to this server are checked against the role's policies; a
function whose role is not known keeps the caller's credentials, unchecked (as before
roles were enforced), and is told so once.

AWS managed policies are documents this server does not have, but for the few that
grant on Lambda's own API, kept here in substance (IAM User Guide, "AWS managed
policies"; Lambda Developer Guide, "AWS managed policies for Lambda").
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .policy import MalformedPolicyDocumentException, Policy

ROLE_ARN = re.compile(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"


def _allow(action: str | list[str]) -> dict[str, Any]:
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}


# Managed policies, by name, with what they allow of Lambda's API (other services'
# actions are kept where they say what the policy is for).
MANAGED: dict[str, dict[str, Any]] = {
    "AdministratorAccess": _allow("*"),
    "PowerUserAccess": {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "account:*"],
        "Resource": "*"}]},
    "AWSLambda_FullAccess": _allow("lambda:*"),
    "AWSLambda_ReadOnlyAccess": _allow(["lambda:Get*", "lambda:List*"]),
    "AWSLambdaRole": _allow("lambda:InvokeFunction"),
    "service-role/AWSLambdaRole": _allow("lambda:InvokeFunction"),
    "service-role/AWSLambdaBasicExecutionRole": _allow(
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]),
    "AWSLambdaBasicExecutionRole": _allow(
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]),
}


@dataclass(frozen=True)
class RoleSpec:
    """A role as a template or a roles file gives it, not yet read (``Roles.put``)."""

    arn: str
    policies: dict[str, Any] | list[Any]
    managed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Role:
    arn: str
    policies: tuple[Policy, ...]

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


class Roles:
    """Role ARN -> ``Role``; ``warnings`` collects what reading them noticed."""

    def __init__(self, account: str, known_actions: frozenset[str] = frozenset()) -> None:
        self.account = account
        self.known_actions = known_actions
        self._roles: dict[str, Role] = {}
        self._lock = threading.Lock()
        self.warnings: list[str] = []

    def get(self, arn: str | None) -> Role | None:
        return None if arn is None else self._roles.get(arn)

    def __contains__(self, arn: object) -> bool:
        return arn in self._roles

    def arn_of(self, name_or_arn: str) -> str:
        """A role's ARN from its ARN or its name (in this server's account)."""
        if name_or_arn.startswith("arn:"):
            if not ROLE_ARN.match(name_or_arn):
                raise MalformedPolicyDocumentException(
                    f"'{name_or_arn}' is not a role's ARN (arn:aws:iam::ACCOUNT:role/NAME)")
            return name_or_arn
        return f"arn:aws:iam::{self.account}:role/{name_or_arn}"

    def put(self, name_or_arn: str, documents: dict[str, Any] | list[Any],
            managed: list[str] | tuple[str, ...] = ()) -> Role:
        """Know the role with these policy ``documents`` (a list, or policy name ->
        document; each JSON text or decoded) and ``managed`` policies (names or ARNs).
        A document that does not parse is refused, saying where."""
        arn = self.arn_of(name_or_arn)
        named = documents.items() if isinstance(documents, dict) else (
            (f"{arn.rsplit('/', 1)[-1]}[{index}]", document)
            for index, document in enumerate(documents))
        policies = [Policy.read(name, document, self.known_actions) for name, document in named]
        for each in managed:
            policy = self.managed(each)
            if policy is not None:
                policies.append(policy)
        role = Role(arn, tuple(policies))
        with self._lock:
            self._roles[arn] = role
            for policy in policies:
                self.warnings.extend(policy.warnings)
        return role

    def managed(self, name_or_arn: str) -> Policy | None:
        """An AWS managed policy, or None (with a warning) when this server lacks it."""
        name = name_or_arn.removeprefix(_MANAGED_PREFIX)
        document = MANAGED.get(name)
        if document is None:
            self.warnings.append(f"managed policy {name_or_arn} is not known locally: it "
                                 "allows nothing on this server's API")
            return None
        return Policy.read(name, document)


def read_roles_file(path: str | Path) -> list[RoleSpec]:
    """A roles file: a JSON object of role name or ARN -> its policies, either a list of
    policy documents or ``{"Policies": {name: document}, "ManagedPolicyArns": [...]}``.
    Its documents are read when put (``Roles.put``)."""
    try:
        roles = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MalformedPolicyDocumentException(
            f"cannot read the roles file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise MalformedPolicyDocumentException(
            f"the roles file {path} is not JSON: {exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}") from None
    if not isinstance(roles, dict):
        raise MalformedPolicyDocumentException(
            f"the roles file {path} must hold a JSON object of role name or ARN -> a list of "
            'policy documents, e.g. {"reader": [{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]}]}')
    specs = []
    for role, policies in roles.items():
        if isinstance(policies, dict) and set(policies) <= {"Policies", "ManagedPolicyArns"}:
            specs.append(RoleSpec(role, policies.get("Policies") or {},
                                  tuple(policies.get("ManagedPolicyArns") or ())))
        elif isinstance(policies, list):
            specs.append(RoleSpec(role, policies))
        else:
            raise MalformedPolicyDocumentException(
                f"the roles file {path}: role {role} must have a list of policy documents or "
                '{"Policies": {name: document}, "ManagedPolicyArns": [...]}')
    return specs
