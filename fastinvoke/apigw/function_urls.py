"""Requests to a function URL: a payload 2.0 event, answered as Lambda's function URLs
answer ("Invoking Lambda function URLs" in AWS's Lambda guide).

``AuthType: AWS_IAM`` URLs take requests signed with SigV4 for service ``lambda`` with a
key the server was given (``serve --auth sigv4 --keys FILE``); others get 403.  CORS is
the URL's own configuration.  ``InvokeMode: RESPONSE_STREAM`` URLs stream the response
(``url_streams``).
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from ..config import ACCOUNT_ID
from ..errors import ServiceError
from ..http.messages import Request, Response
from ..http.sigv4 import Verifier
from ..invoker import Invoker
from ..requests import new_request_id
from .cors import cors_headers, is_preflight, preflight
from .events import build_event
from .gateway import answer
from .routes import DEFAULT_ROUTE, HTTP, Api, Route
from .url_configs import FunctionUrls, UrlConfig
from .url_streams import stream_answer

_FORBIDDEN = msgspec.json.encode({"Message": "Forbidden"})


class FunctionUrlServer:
    def __init__(self, invoker: Invoker, urls: FunctionUrls, verifier: Verifier | None) -> None:
        self.invoker = invoker
        self.urls = urls
        self.verifier = verifier
        self._told = False  # that AWS_IAM URLs need --auth sigv4

    async def serve(self, config: UrlConfig, request: Request) -> Response:
        caller = None
        if config.auth_type == "AWS_IAM":
            caller = self._caller(config, request)
            if caller is None:
                return Response(403, _FORBIDDEN, [("Content-Type", "application/json")])
        if config.cors is not None and is_preflight(request):
            return preflight(config.cors, request, 200, True)
        request_id = new_request_id()
        event = url_event(config.url_id, self.urls.region, request, request_id, caller)
        where = f"{request.method} {request.path} -> {config.function} (function URL)"
        if config.invoke_mode == "RESPONSE_STREAM":
            response = await stream_answer(self.invoker, config.function, event, where)
        else:
            response = await answer(self.invoker, config.function, event, "2.0", where)
        origin = request.headers.get("origin")
        if config.cors is not None and origin is not None:
            response.headers += cors_headers(config.cors, origin)
        response.headers.append(("x-amzn-RequestId", request_id))
        return response

    def _caller(self, config: UrlConfig, request: Request) -> str | None:
        """The access key that signed ``request``, or None (403)."""
        if self.verifier is None:
            if not self._told:
                self._told = True
                print(f"fastinvoke: the function URL of {config.function} has AuthType "
                      "AWS_IAM: its requests are refused until the server checks signatures "
                      "(serve --auth sigv4 --keys FILE)", file=sys.stderr, flush=True)
            return None
        try:
            return self.verifier.verify(request)
        except ServiceError:
            return None


def url_event(url_id: str, region: str, request: Request, request_id: str,
              caller: str | None = None) -> dict[str, Any]:
    """The payload 2.0 event of a request to the function URL ``url_id``; ``caller``: the
    access key that signed it (an AWS_IAM URL)."""
    route = Route(Api(url_id, HTTP, "$default"), "ANY", DEFAULT_ROUTE, "", "2.0", "FunctionUrl")
    event = build_event(route, request, {}, request_id)
    context = event["requestContext"]
    context["apiId"] = context["domainPrefix"] = url_id
    context["domainName"] = f"{url_id}.lambda-url.{region}.on.aws"
    if caller is not None:
        context["authorizer"] = {"iam": {
            "accessKey": caller, "accountId": ACCOUNT_ID, "callerId": caller,
            "cognitoIdentity": None, "principalOrgId": None,
            "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/{caller}", "userId": caller}}
    return event
