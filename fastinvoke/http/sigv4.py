"""AWS Signature Version 4, verified on the server side.

The client (botocore) signs a canonical form of the request; we rebuild the same form
from the request as received and compare signatures.  The canonical form follows
botocore's ``SigV4Auth`` for non-S3 services: the path as sent, dot segments removed,
percent-encoded once more (``/~`` kept); the query's ``key=value`` pairs as sent,
sorted; the signed headers, lower-case, values with runs of whitespace collapsed; the
SHA-256 of the body.  Errors carry the names AWS answers with (403).

The credential scope must name this server's region and service, as an AWS endpoint's
does (IAM User Guide: "Elements of an AWS API request signature"): a client configured
for another region, or a request signed for another service, gets the 403
``InvalidSignatureException`` and the message AWS endpoints answer with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from calendar import timegm
from pathlib import Path
from urllib.parse import quote

from .errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from .messages import Request

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60  # AWS refuses a signature more than 15 minutes off
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 +Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/"
    r"(?P<service>[^/\s,]+)/aws4_request *, *SignedHeaders=(?P<headers>[a-z0-9;\-]+) *, *"
    r"Signature=(?P<signature>[0-9a-f]{64})$")
_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
             "Check your AWS Secret Access Key and signing method. Consult the service "
             "documentation for details.")


def load_keys(path: str | Path) -> dict[str, str]:
    """The keys file: a JSON object of access key id -> secret access key."""
    try:
        keys = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the keys file {path}: {exc}") from None
    if not isinstance(keys, dict) or not keys or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in keys.items()):
        raise ValueError(f"the keys file {path} must hold a JSON object of access key id -> "
                         'secret key, e.g. {"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG"}')
    return keys


class Verifier:
    """Check requests signed with one of ``keys`` for ``service`` in ``region``."""

    def __init__(self, keys: dict[str, str], service: str = "lambda",
                 region: str = "us-east-1") -> None:
        self.keys = keys
        self.service = service
        self.region = region

    def verify(self, request: Request, now: float | None = None,
               service: str | None = None) -> str:
        """Return the access key id that signed ``request`` for ``service`` (by default
        the verifier's), or raise AWS's 403 error."""
        service = service or self.service
        header = request.headers.get("authorization")
        if header is None:
            raise MissingAuthenticationTokenException("Missing Authentication Token")
        match = _AUTHORIZATION.match(header)
        if match is None:
            raise IncompleteSignatureException(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                f"in the {ALGORITHM} format; sign requests with an AWS SDK")
        # The scope is checked before the key, as AWS does: it needs no secret.
        if match["region"] != self.region:
            raise InvalidSignatureException(
                f"Credential should be scoped to a valid region, not '{match['region']}'. ")
        if match["service"] != service:
            raise InvalidSignatureException(
                f"Credential should be scoped to correct service: '{service}'. ")
        secret = self.keys.get(match["key"])
        if secret is None:
            raise UnrecognizedClientException("The security token included in the request is "
                                              "invalid.")
        stamp = request.headers.get("x-amz-date", "")
        signed = match["headers"].split(";")
        if "host" not in signed or not stamp.startswith(match["date"]):
            raise IncompleteSignatureException(
                f"The credential scope must be <date>/{self.region}/{service}/aws4_request "
                "for the X-Amz-Date of the request, and the Host header must be signed")
        _check_time(stamp, time.time() if now is None else now)
        scope = f"{match['date']}/{match['region']}/{match['service']}/aws4_request"
        canonical = canonical_request(request, signed)
        to_sign = "\n".join((ALGORITHM, stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()))
        key = _signing_key(secret, match["date"], match["region"], match["service"])
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["signature"]):
            raise InvalidSignatureException(_MISMATCH)
        return match["key"]


def access_key_of(request: Request) -> str | None:
    """The access key id a request says it is signed with, if it is signed."""
    match = _AUTHORIZATION.match(request.headers.get("authorization", ""))
    return None if match is None else match["key"]


def canonical_request(request: Request, signed_headers: list[str]) -> str:
    pairs = sorted(pair.partition("=")[::2] for pair in request.query.split("&") if pair)
    headers = request.headers
    lines = [f"{name}:{' '.join(headers.get(name, '').split())}" for name in signed_headers]
    body_hash = hashlib.sha256(request.body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != body_hash:
        raise InvalidSignatureException(
            "The provided x-amz-content-sha256 header does not match what was computed.")
    return "\n".join((
        request.method,
        quote(_remove_dot_segments(request.path), safe="/~"),
        "&".join(f"{key}={value}" for key, value in pairs),
        "\n".join(lines) + "\n",
        ";".join(signed_headers),
        body_hash,
    ))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, and empty segments dropped, as AWS services normalise paths."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return "/" + "/".join(kept) + trailing


def _check_time(stamp: str, now: float) -> None:
    try:
        signed_at = timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise IncompleteSignatureException(
            f"X-Amz-Date '{stamp}' is not in the form 20150830T123600Z") from None
    if abs(now - signed_at) > MAX_SKEW_S:
        raise InvalidSignatureException(
            f"Signature expired: {stamp} is now earlier than "
            f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now - MAX_SKEW_S))} "
            f"({time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))} - 15 min.); check this "
            "machine's and the client's clocks")


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
