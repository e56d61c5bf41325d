"""API Gateway's APIs and routes, and how a request finds its route.

Every API of a template is served on one port, as ``sam local start-api`` serves them, at
its routes' own paths (no stage in the path).  A request takes the most specific route
that matches it, as API Gateway chooses: static segments before ``{parameters}``, those
before a greedy ``{proxy+}``, a route's own method before ``ANY``; an HTTP API's
``$default`` route takes what no other route of it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

REST, HTTP = "rest", "http"  # API Gateway's REST APIs (payload 1.0) and HTTP APIs
DEFAULT_ROUTE = "$default"


@dataclass(frozen=True)
class Cors:
    """An API's CORS configuration, values as API Gateway sends them in headers."""

    allow_origins: tuple[str, ...] = ("*",)
    allow_methods: tuple[str, ...] = ("*",)
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass
class Api:
    """One API of the template: ``id`` its logical id (``ServerlessRestApi`` and
    ``ServerlessHttpApi`` for the ones SAM makes of function events alone)."""

    id: str
    kind: str  # REST or HTTP
    stage: str
    stage_variables: dict[str, str] = field(default_factory=dict)
    binary_media_types: tuple[str, ...] = ()  # REST only: "image/png", "*/*"
    cors: Cors | None = None


@dataclass
class Route:
    """A method and path of an API, served by ``function`` with ``payload_version``."""

    api: Api
    method: str  # upper case, or "ANY"
    path: str  # "/hello/{name}", "/{proxy+}", or DEFAULT_ROUTE
    function: str
    payload_version: str  # "1.0" or "2.0"
    source: str  # "Function.Event", for the route table and notes
    pattern: re.Pattern[str] = field(init=False, repr=False)
    rank: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pattern, self.rank = _compile(self.path)

    @property
    def key(self) -> str:
        """API Gateway's route key: ``GET /hello``, ``ANY /{proxy+}``, ``$default``."""
        return self.path if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


def _compile(path: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """The path's regular expression over the decoded path, and its specificity (lower
    sorts first): per segment 0 static, 1 a parameter, 2 greedy; a shorter path after."""
    if path == DEFAULT_ROUTE:
        return re.compile(".*", re.DOTALL), (3,)
    parts, rank = [], []
    for segment in path.strip("/").split("/") if path.strip("/") else []:
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{_group(segment[1:-2])}>.+)")
            rank.append(2)
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{_group(segment[1:-1])}>[^/]+)")
            rank.append(1)
        else:
            parts.append(re.escape(segment))
            rank.append(0)
    return re.compile("/" + "/".join(parts) + "/?", re.DOTALL), tuple(rank)


def _group(name: str) -> str:
    """A regex group name for parameter ``name`` (which may hold characters a group name
    cannot): its hex, decoded back by ``parameters``."""
    return "p" + name.encode().hex()


class RouteTable:
    """The routes of every API served on one port."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda route: (route.rank, route.method == "ANY"))

    def __bool__(self) -> bool:
        return bool(self.routes)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method`` and the percent-encoded ``path``, with its path
        parameters (decoded), or None."""
        decoded = unquote(path)
        for route in self.routes:
            if route.method not in ("ANY", method) and route.path != DEFAULT_ROUTE:
                continue
            found = route.pattern.fullmatch(decoded)
            if found is not None:
                return route, parameters(found)
        return None

    def preflight(self, path: str) -> Route | None:
        """A route of ``path`` (any method) whose API answers CORS preflight requests."""
        decoded = unquote(path)
        for route in self.routes:
            if route.api.cors is not None and route.pattern.fullmatch(decoded):
                return route
        return None

    def table(self) -> list[str]:
        """The route table as ``serve`` prints it at start."""
        return [f"{route.method if route.path != DEFAULT_ROUTE else 'ANY':7} "
                f"{route.path:30} -> {route.function} ({_KINDS[route.api.kind]} "
                f"{route.api.id}, payload {route.payload_version})"
                for route in sorted(self.routes, key=lambda route: (route.path, route.method))]


_KINDS = {REST: "REST API", HTTP: "HTTP API"}


def parameters(found: re.Match[str]) -> dict[str, str]:
    return {bytes.fromhex(group[1:]).decode(): value
            for group, value in found.groupdict().items()}
