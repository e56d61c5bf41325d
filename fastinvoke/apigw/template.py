"""A SAM template's APIs and routes: functions' ``Api`` and ``HttpApi`` events, the
``AWS::Serverless::Api`` and ``AWS::Serverless::HttpApi`` resources they name, and the
``Globals`` of both, as SAM builds them (its "Event source types" and API resource pages).

Events without an explicit API go to the API SAM makes for them: ``ServerlessRestApi``
(stage ``Prod``) or ``ServerlessHttpApi`` (stage ``$default``).  What a local gateway does
not do (authorizers, usage plans, routes only in an OpenAPI ``DefinitionBody``) is noted.
"""

from __future__ import annotations

from typing import Any, Protocol

from .routes import DEFAULT_ROUTE, HTTP, REST, Api, Cors, Route
from .url_configs import AUTH_TYPES, INVOKE_MODES

_API_TYPES = {"AWS::Serverless::Api": REST, "AWS::Serverless::HttpApi": HTTP}
_EVENT_TYPES = {"Api": REST, "HttpApi": HTTP}
IMPLICIT = {REST: "ServerlessRestApi", HTTP: "ServerlessHttpApi"}
_GLOBALS = {REST: "Api", HTTP: "HttpApi"}
_NOT_LOCAL = ("DefinitionBody", "DefinitionUri", "Domain", "AccessLogSetting",
              "MethodSettings", "CacheClusterEnabled", "Models", "GatewayResponses")


class Resolver(Protocol):
    """What of a template's values the reader needs (``sam``'s stack)."""

    def get(self, lid: str, props: dict[str, Any], key: str,
            required: bool = False) -> Any: ...
    def note(self, lid: str, text: str) -> None: ...


def is_api_event(event: Any) -> bool:
    return isinstance(event, dict) and event.get("Type") in _EVENT_TYPES


def read_routes(stack: Resolver, resources: dict[str, Any], globals_: dict[str, Any],
                functions: dict[str, tuple[str, dict[str, Any]]]) -> list[Route]:
    """The routes of the template's API events.  ``functions``: the logical id of each
    function served -> (its name, its properties)."""
    apis: dict[str, Api] = {}

    def api(lid: str, kind: str) -> Api:
        if lid not in apis:
            resource = resources.get(lid) or {}
            props = {**(globals_.get(_GLOBALS[kind]) or {}), **(resource.get("Properties") or {})}
            apis[lid] = _api(stack, lid, kind, props)
        return apis[lid]

    routes: list[Route] = []
    for function_lid, (name, props) in functions.items():
        events = props.get("Events")
        for event_name, event in (events.items() if isinstance(events, dict) else ()):
            if not is_api_event(event):
                continue
            kind = _EVENT_TYPES[event["Type"]]
            source = f"{function_lid}.{event_name}"
            properties = event.get("Properties") or {}
            api_lid = _ref(properties.get("RestApiId" if kind == REST else "ApiId"))
            if api_lid is None:
                api_lid = IMPLICIT[kind]
            elif (resources.get(api_lid) or {}).get("Type") not in _API_TYPES:
                stack.note(function_lid, f"event {event_name}: its API {api_lid} is not an "
                           "AWS::Serverless::Api or HttpApi of this template; not served")
                continue
            route = _route(stack, source, name, api(api_lid, kind), properties)
            if route is not None:
                routes.append(route)
    return _without_duplicates(stack, routes)


def read_url_config(stack: Resolver, lid: str,
                    props: dict[str, Any]) -> tuple[str, str, Cors | None] | None:
    """A function's ``FunctionUrlConfig``: its auth type, invoke mode and CORS."""
    config = stack.get(lid, props, "FunctionUrlConfig")
    if not isinstance(config, dict):
        return None
    auth = str(config.get("AuthType", ""))
    if auth not in AUTH_TYPES:
        stack.note(lid, f"FunctionUrlConfig AuthType {auth or 'missing'} is not NONE or "
                   "AWS_IAM; no function URL")
        return None
    mode = str(config.get("InvokeMode", "BUFFERED"))
    if mode not in INVOKE_MODES:
        stack.note(lid, f"FunctionUrlConfig InvokeMode {mode} is not BUFFERED or "
                   "RESPONSE_STREAM; using BUFFERED")
        mode = "BUFFERED"
    return auth, mode, _http_cors(config.get("Cors"))


def _api(stack: Resolver, lid: str, kind: str, props: dict[str, Any]) -> Api:
    stage = stack.get(lid, props, "StageName")
    variables = stack.get(lid, props, "Variables" if kind == REST else "StageVariables")
    api = Api(lid, kind, str(stage) if stage else ("Prod" if kind == REST else "$default"),
              {str(k): str(v) for k, v in (variables or {}).items()})
    if kind == REST:
        types = stack.get(lid, props, "BinaryMediaTypes") or []
        api.binary_media_types = tuple(str(t).replace("~1", "/") for t in types)
        api.cors = _rest_cors(stack.get(lid, props, "Cors"))
    else:
        api.cors = _http_cors(stack.get(lid, props, "CorsConfiguration"))
    auth = stack.get(lid, props, "Auth")
    if isinstance(auth, dict) and (auth.get("Authorizers") or auth.get("DefaultAuthorizer")):
        stack.note(lid, "Auth authorizers are not enforced locally: every route is open")
    for key in _NOT_LOCAL:
        if key in props:
            stack.note(lid, f"{key} ignored: only the routes of function events are served "
                       "locally")
    return api


def _route(stack: Resolver, source: str, function: str, api: Api,
           properties: dict[str, Any]) -> Route | None:
    function_lid, _, event = source.partition(".")
    path = stack.get(function_lid, properties, "Path")
    method = stack.get(function_lid, properties, "Method")
    if api.kind == REST and not (path and method):
        stack.note(function_lid, f"event {event}: an Api event needs Path and Method; not served")
        return None
    version = "1.0"
    if api.kind == HTTP:
        version = str(stack.get(function_lid, properties, "PayloadFormatVersion") or "2.0")
        if version not in ("1.0", "2.0"):
            stack.note(function_lid, f"event {event}: PayloadFormatVersion {version} is not "
                       "1.0 or 2.0; using 2.0")
            version = "2.0"
    auth = properties.get("Auth")
    if isinstance(auth, dict) and auth.get("Authorizer") not in (None, "NONE"):
        stack.note(function_lid, f"event {event}: its authorizer is not enforced locally")
    if not path and not method:
        return Route(api, "ANY", DEFAULT_ROUTE, function, version, source)
    method = str(method or "ANY").upper()
    return Route(api, "ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method,
                 str(path or "/"), function, version, source)


def _without_duplicates(stack: Resolver, routes: list[Route]) -> list[Route]:
    """One route per method and path on the port: the first in template order."""
    kept: dict[tuple[str, str], Route] = {}
    for route in routes:
        first = kept.setdefault((route.method, route.path), route)
        if first is not route:
            lid, _, event = route.source.partition(".")
            stack.note(lid, f"event {event}: {route.key} is {first.source}'s already "
                       "(every API is served on one port); not served")
    return list(kept.values())


def _ref(node: Any) -> str | None:
    """The logical id an ``ApiId``/``RestApiId`` names (``!Ref MyApi``)."""
    if isinstance(node, dict) and isinstance(node.get("Ref"), str):
        return node["Ref"]
    return node if isinstance(node, str) else None


def _unquote(value: Any) -> str:
    """SAM's REST Cors values are quoted for API Gateway: ``"'*'"``."""
    return str(value).strip().strip("'")


def _rest_cors(cors: Any) -> Cors | None:
    if cors is None or cors is False:
        return None
    if not isinstance(cors, dict):
        return Cors(allow_origins=(_unquote(cors),))
    max_age = cors.get("MaxAge")
    return Cors(
        allow_origins=(_unquote(cors.get("AllowOrigin", "'*'")),),
        allow_methods=_split(_unquote(cors.get("AllowMethods", "'*'"))),
        allow_headers=_split(_unquote(cors.get("AllowHeaders", "''"))),
        max_age=None if max_age is None else int(_unquote(max_age)),
        allow_credentials=bool(cors.get("AllowCredentials", False)))


def _http_cors(cors: Any) -> Cors | None:
    if cors is None or cors is False:
        return None
    if not isinstance(cors, dict):  # CorsConfiguration: true
        return Cors(allow_headers=("*",))
    return Cors(
        allow_origins=tuple(map(str, cors.get("AllowOrigins") or ())),
        allow_methods=tuple(str(m).upper() for m in cors.get("AllowMethods") or ()),
        allow_headers=tuple(map(str, cors.get("AllowHeaders") or ())),
        expose_headers=tuple(map(str, cors.get("ExposeHeaders") or ())),
        max_age=None if cors.get("MaxAge") is None else int(cors["MaxAge"]),
        allow_credentials=bool(cors.get("AllowCredentials", False)))


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
