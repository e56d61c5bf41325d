"""Lambda's REST API (2015-03-31) over the embedded ``Invoker``, as botocore's service
model defines each operation's method, path, and where its members travel (path,
query, headers, JSON body).  Plus ``GET /metrics`` and ``GET /healthz``, and the
functions' URLs: a request whose ``Host`` names one goes to it (``apigw.function_urls``).

Invoke runs on the server's loop (``Invoker.ainvoke``).  The management operations run
in worker threads: unpacking a package, or waiting for the Invoker's locks, must not
hold up invocations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from ..apigw.function_urls import FunctionUrlServer
from ..apigw.url_configs import FunctionUrls
from ..errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    ResourceNotFoundException,
    ServiceError,
    ValidationException,
)
from ..invoker import Invoker
from ..payloads import check_log_type
from ..requests import new_request_id
from ..sources.mappings import Mappings
from ..sources.s3 import Notifier
from . import bodies, logs_api, observe, s3_webhook, shapes
from . import dashboard_routes as dashboard
from .errors import UnknownOperationException
from .functions import FunctionRecord, Functions
from .lambda_model import not_implemented
from .lambda_model import operation as lambda_operation
from .layer_operations import (
    delete_layer_version,
    get_layer_version,
    list_layer_versions,
    list_layers_or_get_by_arn,
    publish_layer_version,
)
from .mapping_operations import (
    create_event_source_mapping,
    delete_event_source_mapping,
    get_event_source_mapping,
    list_event_source_mappings,
    update_event_source_mapping,
)
from .messages import Request, Response, json_response
from .metrics import CONTENT_TYPE, Metrics
from .names import parse_function_name
from .paging import listing, page, version_order
from .provisioned_operations import (
    delete_provisioned_concurrency,
    get_or_list_provisioned_concurrency,
    put_provisioned_concurrency,
)
from .role_auth import RoleAuthorizer
from .sigv4 import Verifier
from .stream_operations import invoke_with_response_stream
from .tag_operations import list_tags, tag_resource, untag_resource
from .url_operations import (
    create_function_url_config,
    delete_function_url_config,
    get_function_url_config,
    list_function_url_configs,
    update_function_url_config,
)
from .version_operations import (
    create_alias,
    delete_alias,
    get_alias,
    list_aliases,
    list_versions_by_function,
    publish_version,
    update_alias,
)

Operation = Callable[["LambdaApi", Request, str | None, dict[str, str]], Awaitable[Response]]
_QUALIFIED_ONLY = ("This operation is permitted on Lambda functions only. Aliases and versions "
                   "do not support this operation. Please specify either a function name or "
                   "an unqualified function ARN.")
_JSON_TYPE = ("Content-Type", "application/json")
_CACHED = 1024  # most entries of a per-request cache (paths, names) before it starts over


class LambdaApi:
    """The application ``HttpServer`` serves.  ``verifier`` (SigV4) guards every Lambda
    operation; ``/healthz`` and ``/metrics`` are open, for probes and scrapers.  With
    ``roles``, a request signed with a function's role credentials is checked against
    its role's policies instead, whether or not ``verifier`` guards the others."""

    def __init__(self, invoker: Invoker, functions: Functions, metrics: Metrics,
                 verifier: Verifier | None = None, urls: FunctionUrls | None = None,
                 mappings: Mappings | None = None,
                 roles: RoleAuthorizer | None = None,
                 notifier: Notifier | None = None) -> None:
        self.invoker = invoker
        self.notifier = notifier or Notifier([], invoker.invoke)  # S3 events' subscriptions
        self.stopping = False  # the server stops: the dashboard's event streams end
        self.mappings = mappings or Mappings(invoker.state_dir, {})
        self.functions = functions
        self.layers = functions.layers
        self.metrics = metrics
        self.verifier = verifier
        self.roles = roles
        self.urls = urls or FunctionUrls(invoker.state_dir, invoker.region)
        self._url_server = FunctionUrlServer(invoker, self.urls, verifier)
        # Per-request lookups that give the same answer for the same input, cached (a few
        # µs each per Invoke): the histogram's child per function (``labels`` takes a lock
        # and builds a tuple every call), and the (name, qualifier) a function segment and
        # Qualifier parse to (only what parsed: errors are raised afresh every time).
        self._invoke_seconds: dict[str, Any] = {}
        self._names: dict[tuple[str, str | None, int], tuple[str, str | None]] = {}

    async def __call__(self, request: Request) -> Response:
        host = request.headers.get("host")
        url_host = host is not None and ".lambda-url." in host
        if url_host:
            url = self.urls.by_host(host)
            if url is not None:
                return await self._url_server.serve(url, request)
        if request.method == "GET" and request.path in _OPEN:
            return _OPEN[request.path](self)
        if request.method == "GET" and request.path in dashboard.PATHS and not url_host:
            return dashboard.answer(request.path, self.invoker, lambda: self.stopping)
        logs_operation = logs_api.operation_of(request)  # CloudWatch Logs' metric filters
        try:
            if self.roles is not None and self.roles.applies(request):
                self.roles.authorize(request)
            elif self.verifier is not None:
                self.verifier.verify(request, service="logs" if logs_operation else None)
        except ServiceError as error:
            if logs_operation is None:
                raise
            raise logs_api.Refused(error) from None
        if logs_operation is not None:
            return await asyncio.to_thread(logs_api.answer, self.invoker, request)
        if request.path == s3_webhook.PATH:
            return await s3_webhook.receive(self.notifier, request, self.invoker.region)
        if request.method == "GET" and request.path.startswith("/logs/"):
            return await asyncio.to_thread(observe.log_events, self.invoker, request.path,
                                           _query(request.query))
        operation, function, member = _route(request)
        query = _query(request.query)
        if member is not None:  # a path member after the function's (an alias's name)
            query[member[0]] = member[1]
        return await operation(self, request, function, query)

    # -- invoking -------------------------------------------------------------------------

    async def invoke(self, request: Request, function: str | None,
                     query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        headers = request.headers
        log_type = headers.get("x-amz-log-type")
        check_log_type(log_type)
        invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
        started = time.perf_counter()
        result = await self.invoker.ainvoke(
            name, request.body, invocation_type=invocation_type, log_type=log_type,
            client_context=headers.get("x-amz-client-context"), qualifier=qualifier,
            trace_header=headers.get("x-amzn-trace-id"))
        if result.status_code != 200:  # Event 202, DryRun 204
            return Response(result.status_code, b"", [("x-amzn-RequestId", result.request_id)])
        elapsed = time.perf_counter() - started
        histogram = self._invoke_seconds.get(name)
        if histogram is None:
            histogram = self._invoke_seconds[name] = self.metrics.invoke_seconds.labels(name)
        histogram.observe(elapsed)
        answer = [("x-amzn-RequestId", result.request_id), _JSON_TYPE,
                  ("X-Amz-Executed-Version", result.executed_version or "$LATEST")]
        if result.function_error is not None:
            answer.append(("X-Amz-Function-Error", result.function_error))
        if result.log_result is not None:
            answer.append(("X-Amz-Log-Result", result.log_result))
        return Response(200, result.payload, answer)

    # -- functions ------------------------------------------------------------------------

    async def create_function(self, request: Request, function: str | None,
                              query: dict[str, str]) -> Response:
        body = bodies.decode(request.body, bodies.CreateFunction)
        record = await asyncio.to_thread(self.functions.create, body)
        if body.publish:  # answered with version 1's configuration
            record = await asyncio.to_thread(self.functions.publish, record.config.name, "",
                                             None, None)
        return json_response(shapes.function_configuration(record, self.invoker), 201)

    async def list_functions(self, request: Request, function: str | None,
                             query: dict[str, str]) -> Response:
        every_version = query.get("FunctionVersion") == "ALL"
        records = await asyncio.to_thread(self.functions.all, every_version)
        chosen, marker = page(records, _listing_order, query)
        return json_response(listing("Functions", [
            shapes.function_configuration(
                record, self.invoker, listing=True,
                arn_qualifier="$LATEST" if every_version and record.config.version == "$LATEST"
                else None)
            for record in chosen], marker))

    async def get_function(self, request: Request, function: str | None,
                           query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        record = await asyncio.to_thread(self.functions.at, name, qualifier)
        return json_response(shapes.get_function(record, self.invoker, qualifier))

    async def get_function_configuration(self, request: Request, function: str | None,
                                         query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        record = await asyncio.to_thread(self.functions.at, name, qualifier)
        return json_response(shapes.function_configuration(record, self.invoker,
                                                           arn_qualifier=qualifier))

    async def update_function_configuration(self, request: Request, function: str | None,
                                            query: dict[str, str]) -> Response:
        name = self.unqualified(function, query, max_length=140)
        body = bodies.decode(request.body, bodies.UpdateFunctionConfiguration)
        record = await asyncio.to_thread(self.functions.update_configuration, name, body)
        return json_response(shapes.function_configuration(record, self.invoker))

    async def update_function_code(self, request: Request, function: str | None,
                                   query: dict[str, str]) -> Response:
        name = self.unqualified(function, query, max_length=140)
        body = bodies.decode(request.body, bodies.UpdateFunctionCode)
        record = await asyncio.to_thread(self.functions.update_code, name, body)
        if body.publish and not body.dry_run:
            record = await asyncio.to_thread(self.functions.publish, name, "", None, None)
        return json_response(shapes.function_configuration(record, self.invoker))

    async def delete_function(self, request: Request, function: str | None,
                              query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        if qualifier is not None:
            await asyncio.to_thread(self.invoker.delete_function, name, qualifier)
            return _empty(204)
        await asyncio.to_thread(self.functions.delete, name)
        self.urls.delete(name, missing_ok=True)  # a function's URL goes with it
        return _empty(204)

    # -- concurrency and the account ------------------------------------------------------

    async def put_function_concurrency(self, request: Request, function: str | None,
                                       query: dict[str, str]) -> Response:
        name = self.unqualified(function, query, qualified_error=_QUALIFIED_ONLY)
        body = bodies.decode(request.body, bodies.PutFunctionConcurrency)
        reserved = body.reserved_concurrent_executions
        await asyncio.to_thread(self.functions.set_concurrency, name, reserved)
        return json_response(shapes.concurrency(reserved))

    async def get_function_concurrency(self, request: Request, function: str | None,
                                       query: dict[str, str]) -> Response:
        name = self.unqualified(function, query, qualified_error=_QUALIFIED_ONLY)
        reserved = self.invoker.get_function(name).reserved_concurrency
        return json_response(shapes.concurrency(reserved))

    async def delete_function_concurrency(self, request: Request, function: str | None,
                                          query: dict[str, str]) -> Response:
        name = self.unqualified(function, query, qualified_error=_QUALIFIED_ONLY)
        await asyncio.to_thread(self.functions.set_concurrency, name, None)
        return _empty(204)

    async def get_account_settings(self, request: Request, function: str | None,
                                   query: dict[str, str]) -> Response:
        records = await asyncio.to_thread(self.functions.all)
        return json_response(shapes.account_settings(records, self.invoker))

    # -- asynchronous invocation settings -----------------------------------------------

    async def put_event_invoke_config(self, request: Request, function: str | None,
                                      query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        settings = _event_settings(bodies.decode(request.body, bodies.EventInvokeConfig))
        config = await asyncio.to_thread(self.invoker.event_invoke_config, name,
                                         qualifier=qualifier, **settings)
        return json_response(shapes.event_invoke_config(name, qualifier, config, self.invoker))

    async def update_event_invoke_config(self, request: Request, function: str | None,
                                         query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        settings = _event_settings(bodies.decode(request.body, bodies.EventInvokeConfig))
        changes = {key: value for key, value in settings.items() if value is not None}
        config = await asyncio.to_thread(self.invoker.update_event_invoke_config, name,
                                         qualifier, **changes)
        return json_response(shapes.event_invoke_config(name, qualifier, config, self.invoker))

    async def get_event_invoke_config(self, request: Request, function: str | None,
                                      query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        config = self.invoker.get_event_invoke_config(name, qualifier)
        return json_response(shapes.event_invoke_config(name, qualifier, config, self.invoker))

    async def list_event_invoke_configs(self, request: Request, function: str | None,
                                        query: dict[str, str]) -> Response:
        name = self.unqualified(function, query)
        configs = []
        for order, qualifier in [
                ("0", None),
                *((f"1{version.config.version:0>10}", version.config.version)
                  for version in self.invoker.list_versions(name)),
                *((f"2{alias.name}", alias.name) for alias in self.invoker.list_aliases(name))]:
            try:
                config = self.invoker.get_event_invoke_config(name, qualifier)
            except ResourceNotFoundException:
                continue  # none set for this version or alias
            configs.append((order, qualifier, config))
        chosen, marker = page(configs, lambda item: item[0], query)
        return json_response(listing("FunctionEventInvokeConfigs", [
            shapes.event_invoke_config(name, qualifier, config, self.invoker)
            for _, qualifier, config in chosen], marker))

    async def delete_event_invoke_config(self, request: Request, function: str | None,
                                         query: dict[str, str]) -> Response:
        name, qualifier = self.qualified_name(function, query)
        await asyncio.to_thread(self.invoker.delete_event_invoke_config, name, qualifier)
        return _empty(204)

    # -- open endpoints -------------------------------------------------------------------

    def healthz(self) -> Response:
        return json_response({"status": "ok", "functions": len(self.invoker.list_functions())})

    def metrics_text(self) -> Response:
        return Response(200, self.metrics.render(), [("Content-Type", CONTENT_TYPE)])

    def billing(self) -> Response:
        return observe.billing(self.invoker)

    # -- names ----------------------------------------------------------------------------

    def qualified_name(self, function: str | None, query: dict[str, str],
                       max_length: int = 256) -> tuple[str, str | None]:
        """The function's name and the qualifier given (in its name or ``Qualifier``)."""
        assert function is not None  # every route with a function has its segment
        key = (function, query.get("Qualifier"), max_length)
        parsed = self._names.get(key)
        if parsed is None:
            parsed = parse_function_name(function, key[1], region=self.invoker.region,
                                         account=self.invoker.account_id,
                                         max_length=max_length)
            if len(self._names) >= _CACHED:
                self._names.clear()  # names sent are unbounded: keep the recent ones
            self._names[key] = parsed
        return parsed

    def latest_name(self, function: str | None, query: dict[str, str]) -> str:
        """The name, for operations on $LATEST only."""
        name, qualifier = self.qualified_name(function, query)
        if qualifier not in (None, "$LATEST"):
            raise ResourceNotFoundException(
                f"Function not found: {self.invoker.function_arn(name)}:{qualifier}")
        return name

    def unqualified(self, function: str | None, query: dict[str, str], max_length: int = 256,
                     qualified_error: str | None = None) -> str:
        name, qualifier = self.qualified_name(function, query, max_length)
        if qualifier is not None:
            raise InvalidParameterValueException(
                qualified_error or "This operation takes an unqualified function name or ARN.")
        return name


# (version, collection, what follows the function's name or None) -> method -> operation
ROUTES: dict[tuple[str, str, str | None], dict[str, Operation]] = {
    ("2015-03-31", "functions", None): {"GET": LambdaApi.list_functions,
                                        "POST": LambdaApi.create_function},
    ("2015-03-31", "functions", ""): {"GET": LambdaApi.get_function,
                                      "DELETE": LambdaApi.delete_function},
    ("2015-03-31", "functions", "invocations"): {"POST": LambdaApi.invoke},
    ("2021-11-15", "functions", "response-streaming-invocations"): {
        "POST": invoke_with_response_stream},
    ("2015-03-31", "functions", "configuration"): {
        "GET": LambdaApi.get_function_configuration,
        "PUT": LambdaApi.update_function_configuration},
    ("2015-03-31", "functions", "code"): {"PUT": LambdaApi.update_function_code},
    ("2017-10-31", "functions", "concurrency"): {"PUT": LambdaApi.put_function_concurrency,
                                                 "DELETE": LambdaApi.delete_function_concurrency},
    ("2019-09-30", "functions", "concurrency"): {"GET": LambdaApi.get_function_concurrency},
    ("2019-09-30", "functions", "provisioned-concurrency"): {
        "PUT": put_provisioned_concurrency, "GET": get_or_list_provisioned_concurrency,
        "DELETE": delete_provisioned_concurrency},
    ("2016-08-19", "account-settings", None): {"GET": LambdaApi.get_account_settings},
    ("2019-09-25", "functions", "event-invoke-config"): {
        "PUT": LambdaApi.put_event_invoke_config, "POST": LambdaApi.update_event_invoke_config,
        "GET": LambdaApi.get_event_invoke_config,
        "DELETE": LambdaApi.delete_event_invoke_config},
    ("2021-10-31", "functions", "url"): {
        "POST": create_function_url_config, "GET": get_function_url_config,
        "PUT": update_function_url_config, "DELETE": delete_function_url_config},
    ("2019-09-25", "functions", "event-invoke-config/list"): {
        "GET": LambdaApi.list_event_invoke_configs},
    ("2015-03-31", "functions", "versions"): {"POST": publish_version,
                                              "GET": list_versions_by_function},
    ("2015-03-31", "functions", "aliases"): {"POST": create_alias, "GET": list_aliases},
    ("2015-03-31", "functions", "aliases/*"): {"GET": get_alias, "PUT": update_alias,
                                               "DELETE": delete_alias},
    ("2021-10-31", "functions", "urls"): {"GET": list_function_url_configs},
    ("2018-10-31", "layers", None): {"GET": list_layers_or_get_by_arn},
    ("2018-10-31", "layers", "versions"): {"POST": publish_layer_version,
                                           "GET": list_layer_versions},
    ("2018-10-31", "layers", "versions/*"): {"GET": get_layer_version,
                                             "DELETE": delete_layer_version},
    ("2017-03-31", "tags", ""): {"POST": tag_resource, "DELETE": untag_resource,
                                 "GET": list_tags},
    ("2015-03-31", "event-source-mappings", None): {"POST": create_event_source_mapping,
                                                   "GET": list_event_source_mappings},
    ("2015-03-31", "event-source-mappings", ""): {"GET": get_event_source_mapping,
                                                 "PUT": update_event_source_mapping,
                                                 "DELETE": delete_event_source_mapping},
}
# The member a route's last path segment holds, where a "*" stands for it.
_PATH_MEMBERS = {"aliases/*": "Name", "versions/*": "VersionNumber"}
_OPEN: dict[str, Callable[[LambdaApi], Response]] = {
    "/healthz": LambdaApi.healthz, "/metrics": LambdaApi.metrics_text,
    "/billing": LambdaApi.billing}

PathMember = tuple[str, str] | None  # (botocore's member name, its value from the path)
_ROUTED: dict[str, tuple[dict[str, Operation], str | None, PathMember]] = {}


def _route(request: Request) -> tuple[Operation, str | None, PathMember]:
    """The operation for the request's method and path, the function's name as sent
    (percent-decoded) and the path's other member, or Lambda's 404/405."""
    # A client invokes the same few paths over and over: the methods and function a path
    # maps to are cached (splitting and percent-decoding it cost more than the lookup).
    routed = _ROUTED.get(request.path)
    if routed is None:
        try:
            routed = _methods(request)
        except UnknownOperationException:
            name = lambda_operation(request.method, request.path, request.query)
            if name is not None:
                raise not_implemented(name) from None
            raise
        if len(_ROUTED) >= _CACHED:
            _ROUTED.clear()
        _ROUTED[request.path] = routed
    methods, function, member = routed
    operation = methods.get(request.method)
    if operation is None:
        name = lambda_operation(request.method, request.path, request.query)
        if name is not None:
            raise not_implemented(name)
        error = UnknownOperationException(
            f"{request.method[:20]} is not an operation on {request.path[:200]}; use "
            f"{' or '.join(methods)}")
        error.status = 405
        raise error
    return operation, function, member


def _methods(request: Request) -> tuple[dict[str, Operation], str | None, PathMember]:
    """The operations on the request's path by method, the function's name and the
    path's other member, or Lambda's 404."""
    parts = request.path.split("/")
    if len(parts) > 3 and parts[-1] == "":
        parts.pop()  # a trailing slash: /2015-03-31/functions/ is ListFunctions too
    function = member = None
    if len(parts) == 3 and parts[0] == "":
        key: tuple[str, str, str | None] = (parts[1], parts[2], None)
    elif len(parts) in (4, 5, 6) and parts[0] == "":
        key = (parts[1], parts[2], "/".join(parts[4:]))
        function = _decode_segment(parts[3])
        if len(parts) == 6 and key not in ROUTES:  # .../aliases/{Name}
            key = (parts[1], parts[2], f"{parts[4]}/*")
            if key[2] in _PATH_MEMBERS:
                member = (_PATH_MEMBERS[key[2]], _decode_segment(parts[5]))
    else:
        key = ("", "", None)
    methods = ROUTES.get(key)
    if methods is None:
        raise UnknownOperationException(
            f"No Lambda operation has the path {request.path[:200]}; see the Lambda API "
            "reference (2015-03-31)")
    return methods, function, member


def _decode_segment(segment: str) -> str:
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationException(
            "1 validation error detected: Value at 'functionName' failed to satisfy "
            "constraint: Member must be UTF-8 text, percent-encoded") from None


def _query(text: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict",
                              max_num_fields=64))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestContentException(
            f"The query string is not UTF-8 key=value pairs ({exc}); percent-encode it"
        ) from None


def _listing_order(record: FunctionRecord) -> str:
    """ListFunctions' order: by name, each function's $LATEST, then its versions."""
    return f"{record.config.name}\0{version_order(record)}"


def _event_settings(body: bodies.EventInvokeConfig) -> dict[str, Any]:
    """The body's members as ``Invoker.event_invoke_config`` keywords (None: not given)."""
    destinations = body.destination_config or bodies.DestinationConfig()
    return {
        "maximum_retry_attempts": body.maximum_retry_attempts,
        "maximum_event_age_s": body.maximum_event_age_in_seconds,
        "on_success": destinations.on_success.destination if destinations.on_success else None,
        "on_failure": destinations.on_failure.destination if destinations.on_failure else None,
    }


def _empty(status: int) -> Response:
    return Response(status, b"", [("x-amzn-RequestId", new_request_id())])
