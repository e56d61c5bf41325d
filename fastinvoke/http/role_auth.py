"""Requests signed with a function's role credentials: who signed (the session their token
proves), whether the signature holds, and IAM's decision on what they ask (403
``AccessDeniedException`` in AWS's words otherwise).  Other requests are not this
module's: the server's ``--auth`` applies to them."""

from __future__ import annotations

from ..iam.credentials import Credentials, Expired, Session
from ..iam.policy import Decision, evaluate
from ..iam.roles import Roles
from . import logs_api
from .errors import AccessDeniedException, ExpiredTokenException, UnrecognizedClientException
from .iam_actions import action_and_resource
from .messages import Request
from .sigv4 import Verifier, access_key_of

_INVALID = "The security token included in the request is invalid."


class RoleAuthorizer:
    def __init__(self, credentials: Credentials, roles: Roles, region: str,
                 account: str) -> None:
        self.credentials = credentials
        self.roles = roles
        self.region = region
        self.account = account

    @staticmethod
    def applies(request: Request) -> bool:
        """Whether ``request`` is signed with temporary credentials (a session token)."""
        return "x-amz-security-token" in request.headers

    def authorize(self, request: Request) -> Session:
        """The session that signed ``request`` if its role may do what it asks; else
        AWS's 403."""
        key = access_key_of(request)
        token = request.headers["x-amz-security-token"]
        try:
            session = None if key is None else self.credentials.session(key, token)
        except Expired:
            raise ExpiredTokenException("The security token included in the request is "
                                        "expired") from None
        if session is None:
            raise UnrecognizedClientException(_INVALID)
        logs = logs_api.operation_of(request) is not None
        Verifier({session.access_key_id: self.credentials.secret_of(session.access_key_id)},
                 "logs" if logs else "lambda", self.region).verify(request)
        action, resource = (logs_api.action_and_resource if logs else action_and_resource)(
            request, region=self.region, account=self.account)
        if action == "lambda:Unknown":
            return session  # no operation: the request is answered 404
        role = self.roles.get(session.role_arn)
        decision = evaluate(role.policies if role else (), action, resource)
        if decision is not Decision.ALLOW:
            why = ("with an explicit deny in an identity-based policy"
                   if decision is Decision.EXPLICIT_DENY
                   else f"because no identity-based policy allows the {action} action")
            raise AccessDeniedException(
                f"User: {session.principal} is not authorized to perform: {action} on "
                f"resource: {resource} {why}")
        return session
