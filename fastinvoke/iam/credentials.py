"""Temporary credentials for a function's role, as Lambda hands its execution environments
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), and reading them
back from a signed request.

Nothing is stored: the session token carries the role, the function and the expiry,
sealed with a key this server made when it started (HMAC-SHA256), and the secret key is
derived from the access key id with the same key.  A request signed with them proves
its session; the server checks the seal, the expiry, then the signature.  Credentials
of an earlier run of the server (another key) are unrecognised, as AWS answers tokens
it did not issue.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

# How long credentials last.  Lambda's execution environments never outlive theirs: the
# pool renews an environment ``RENEW_BEFORE_S`` before its credentials expire.
LIFETIME_S = 12 * 3600
RENEW_BEFORE_S = 15 * 60


@dataclass(frozen=True)
class Session:
    """Who signed: the role's ARN and the function (its session's name, as Lambda names
    the session after the function)."""

    access_key_id: str
    role_arn: str
    function: str
    expires: float

    @property
    def principal(self) -> str:
        """The ARN IAM names in its answers: the role's assumed-role session."""
        account = self.role_arn.split(":")[4]
        role = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{account}:assumed-role/{role}/{self.function}"


class Expired(Exception):
    """The session token was issued here and has expired."""


class Credentials:
    """Issues and reads back the credentials of one server run."""

    def __init__(self, lifetime_s: float = LIFETIME_S) -> None:
        self.lifetime_s = lifetime_s
        self._key = secrets.token_bytes(32)

    def issue(self, role_arn: str, function: str,
              now: float | None = None) -> tuple[dict[str, str], float]:
        """The variables of an environment of ``function`` running as ``role_arn``, and
        when they expire (epoch seconds)."""
        expires = (time.time() if now is None else now) + self.lifetime_s
        access_key_id = "ASIA" + base64.b32encode(secrets.token_bytes(10)).decode()[:16]
        claims = json.dumps({"k": access_key_id, "r": role_arn, "f": function,
                             "e": round(expires, 3)}, separators=(",", ":")).encode()
        token = _b64(claims) + "." + _b64(self._seal(claims))
        return {
            "AWS_ACCESS_KEY_ID": access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_of(access_key_id),
            "AWS_SESSION_TOKEN": token,
        }, expires

    def secret_of(self, access_key_id: str) -> str:
        """The secret access key that goes with ``access_key_id``."""
        digest = hmac.new(self._key, b"secret:" + access_key_id.encode(), hashlib.sha256)
        return base64.b64encode(digest.digest()).decode()[:40]

    def session(self, access_key_id: str, token: str, now: float | None = None) -> Session | None:
        """The session ``token`` proves for ``access_key_id``; None if this server did
        not issue it.  Raises ``Expired`` once it has expired."""
        claims_text, _, seal = token.partition(".")
        try:
            claims = _unb64(claims_text)
            if not hmac.compare_digest(_unb64(seal), self._seal(claims)):
                return None
            fields = json.loads(claims)
        except (ValueError, binascii.Error):
            return None
        if fields.get("k") != access_key_id:
            return None
        if (time.time() if now is None else now) >= fields["e"]:
            raise Expired(access_key_id)
        return Session(access_key_id, fields["r"], fields["f"], fields["e"])

    def _seal(self, claims: bytes) -> bytes:
        return hmac.new(self._key, b"token:" + claims, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
