"""A SAM template's function roles: the role ``Role`` names when it is an ``AWS::IAM::Role``
of the template (its inline ``Policies`` and ``ManagedPolicyArns``), else the role SAM
makes for the function (``<LogicalId>Role``: AWSLambdaBasicExecutionRole and the
function's ``Policies``: managed policy names or ARNs, inline documents and SAM policy
templates).  AWS SAM Developer Guide: "AWS::Serverless::Function" (Role, Policies) and
"AWS SAM policy templates".

Values are resolved statement by statement: one that names a resource only a deployed
stack has (another service's table, say) is dropped with a note, and the rest apply.
"""

from __future__ import annotations

from typing import Any, Protocol

from .roles import RoleSpec

_BASIC = "service-role/AWSLambdaBasicExecutionRole"
_FUNCTION_ARN = "arn:aws:lambda:{region}:{account}:function:{name}*"


class Stack(Protocol):
    """What of a template this reads (``sam``'s stack)."""

    def get(self, lid: str, props: dict[str, Any], key: str,
            required: bool = False) -> Any: ...
    def note(self, lid: str, text: str) -> None: ...
    def role_arn(self, lid: str) -> str: ...


def read_role(stack: Stack, resources: dict[str, Any], lid: str, props: dict[str, Any],
              role: str | None, *, region: str, account: str) -> RoleSpec | None:
    """The role of function ``lid`` (``role``: its ``Role``, resolved), or None when it
    names a role the template does not define (a roles file may give it) or one that
    cannot be resolved here."""
    if props.get("Role") is not None:
        if role is None:
            return None
        for role_lid, resource in resources.items():
            if isinstance(resource, dict) and resource.get("Type") == "AWS::IAM::Role" \
                    and stack.role_arn(role_lid) == role:
                return _template_role(stack, role_lid, resource.get("Properties") or {}, role)
        return None
    documents: dict[str, Any] = {}
    managed = [_BASIC]
    policies = props.get("Policies")
    entries = policies if isinstance(policies, list) else [] if policies is None else [policies]
    for index, entry in enumerate(entries):
        where = f"Policies[{index}]"
        if isinstance(entry, str):
            managed.append(entry)
        elif isinstance(entry, dict) and "Statement" in entry:
            document = _document(stack, lid, where, entry)
            if document is not None:
                documents[f"{lid}Policy{index}"] = document
        elif isinstance(entry, dict) and len(entry) == 1:
            name, parameters = next(iter(entry.items()))
            document = _policy_template(stack, lid, where, name, parameters, region, account)
            if document is not None:
                documents[f"{lid}{name}{index}"] = document
        else:
            stack.note(lid, f"{where} ignored: neither a managed policy, a policy document "
                       "nor a SAM policy template")
    return RoleSpec(f"arn:aws:iam::{account}:role/{lid}Role", documents, tuple(managed))


def _template_role(stack: Stack, lid: str, props: dict[str, Any], arn: str) -> RoleSpec:
    documents: dict[str, Any] = {}
    for index, policy in enumerate(props.get("Policies") or []):
        if not isinstance(policy, dict) or not isinstance(policy.get("PolicyDocument"), dict):
            stack.note(lid, f"Policies[{index}] ignored: it has no PolicyDocument")
            continue
        name = stack.get(lid, policy, "PolicyName") or f"{lid}Policy{index}"
        document = _document(stack, lid, f"Policies[{index}]", policy["PolicyDocument"])
        if document is not None:
            documents[str(name)] = document
    managed = stack.get(lid, props, "ManagedPolicyArns") or []
    return RoleSpec(arn, documents, tuple(str(each) for each in managed))


def _document(stack: Stack, lid: str, where: str, document: dict[str, Any]) -> Any:
    """``document`` with its values resolved; statements that cannot be are dropped."""
    statements = document.get("Statement")
    if not isinstance(statements, list):
        statements = [statements]
    kept = []
    for index, statement in enumerate(statements):
        value = stack.get(lid, {f"{where}.Statement[{index}]": statement},
                          f"{where}.Statement[{index}]")
        if value is not None:
            kept.append(value)
    if not kept:
        return None
    return {**{key: stack.get(lid, document, key) for key in document if key != "Statement"},
            "Statement": kept}


def _policy_template(stack: Stack, lid: str, where: str, name: str, parameters: Any,
                     region: str, account: str) -> dict[str, Any] | None:
    """The document of SAM policy template ``name``: those that grant on Lambda's own API;
    the others concern services this server does not serve (noted)."""
    if name != "LambdaInvokePolicy":
        stack.note(lid, f"{where}: policy template {name} grants on other services than "
                   "Lambda: nothing of it is checked here")
        return None
    function = stack.get(lid, parameters if isinstance(parameters, dict) else {},
                         "FunctionName")
    if not isinstance(function, str):
        stack.note(lid, f"{where}: LambdaInvokePolicy needs a FunctionName; ignored")
        return None
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
        "Resource": _FUNCTION_ARN.format(region=region, account=account, name=function)}]}
