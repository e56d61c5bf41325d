"""The ``fastinvoke serve`` process: an Invoker, the Lambda API over HTTP, and the stop.

With ``--zmq``, the ZeroMQ endpoint serves Invoke on the same loop and stops alike; so
does the API port (``--api-port``) when the template has API routes.

Starting.  The addresses are bound before anything else: one already taken (by another
program, or by another ``fastinvoke serve``, maybe of the same state directory) is one
line naming the flag that picks another, exit status 1, and nothing was started (an
Invoker on a state directory a running server uses would take its workers' socket).

Stopping.  The first SIGTERM or SIGINT stops accepting connections, lets the requests
being answered finish (at most ``grace_s``), then closes the Invoker, which stops every
template and worker.  A second SIGINT stops at once.  Either way no worker outlives the
server: the Invoker's close kills and reaps what is left.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import ipaddress
import re
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from .. import serverfile
from ..apigw.gateway import API_BODY_LIMIT, Gateway, gateway_error_page
from ..apigw.routes import Cors, Route, RouteTable
from ..apigw.url_configs import FunctionUrls
from ..autopublish import publish_aliases
from ..config import FunctionConfig
from ..endpoint.server import ZmqEndpoint, ZmqListener
from ..iam.credentials import LIFETIME_S
from ..iam.roles import RoleSpec
from ..invoker import Invoker
from ..reloading import Reloader
from ..result import InvokeResult
from ..sam import Template
from ..sources.mappings import DYNAMODB, KINESIS, SQS, Mapping, Mappings
from ..sources.s3 import Notifier, Subscription
from ..sources.s3poll import BucketPoller, forget_others
from ..sources.schedules import Schedule, Scheduler
from ..sources.sqs import Poller
from ..sources.stream_sources import stream_source
from ..sources.streams import Checkpoints, StreamPoller, failure_sender
from . import s3_webhook
from .api import LambdaApi
from .functions import Functions
from .layer_store import LayerStore
from .metrics import Metrics
from .role_auth import RoleAuthorizer
from .server import HttpServer, Limits, bind
from .sigv4 import Verifier


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 3001
    state_dir: str | None = None
    keys: dict[str, str] | None = None  # access key id -> secret: SigV4 required
    functions: list[FunctionConfig] = field(default_factory=list)
    limits: Limits = Limits()
    grace_s: float = 30.0
    zmq: str | None = None  # also serve the ZeroMQ endpoint on this address
    max_workers: int | None = None
    memory_budget_mb: int | None = None
    # A template's EventInvokeConfig per function (Invoker.event_invoke_config keywords).
    event_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # AutoPublishAlias
    layers: dict[str, str] = field(default_factory=dict)  # layer ARN -> local dir (--layer)
    region: str = "us-east-1"  # in ARNs, and the region requests must be signed for
    sandbox: bool = True  # each function in an environment of its own (Invoker's sandbox)
    ray_address: str | None = None  # workers on this Ray cluster (Invoker's ray_address)
    overcommit: float = 1.0
    routes: list[Route] = field(default_factory=list)  # a template's API routes
    # A template's function URLs: function name -> (auth type, invoke mode, CORS).
    function_urls: dict[str, tuple[str, str, Cors | None]] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)  # to fire while serving
    sqs_endpoint: str | None = None  # where the SQS queues of mappings are read
    dynamodb_endpoint: str | None = None  # where the DynamoDB streams of mappings are read
    kinesis_endpoint: str | None = None  # where the Kinesis streams of mappings are read
    stream_mappings: list[Mapping] = field(default_factory=list)  # a template's
    sqs_mappings: list[Mapping] = field(default_factory=list)  # a template's
    s3_subscriptions: list[Subscription] = field(default_factory=list)  # a template's
    s3_endpoint: str | None = None  # poll the subscribed buckets there (else: webhooks)
    s3_poll_interval_s: float = 1.0
    unloadable: dict[str, str] = field(default_factory=dict)  # a template's: name -> why
    api_port: int | None = 3000  # where to serve them (None: not at all)
    # Hot reload: the template to watch (with its functions' files), and how to read it.
    watch: tuple[Path, Callable[[], Template]] | None = None
    # Roles: functions get their role's credentials, and what they sign is checked.
    iam: bool = False
    roles: list[RoleSpec] = field(default_factory=list)  # a template's and a roles file's
    credentials_lifetime_s: float = LIFETIME_S


def check_exposure(host: str, keys: dict[str, str] | None) -> str | None:
    """Why serving on ``host`` is refused, or None.  Beyond loopback, anyone who can
    reach the port could run code: requests must then be signed."""
    if keys is not None or is_loopback(host):
        return None
    return _exposed(host)


def _exposed(host: str) -> str:
    return (f"refusing to serve on {host} without authentication: anyone who reaches it could "
            "run code. Add --auth sigv4 --keys FILE (a JSON object of access key id -> secret "
            "key; clients sign with those keys), or bind 127.0.0.1")


_ZMQ_TCP = re.compile(r"tcp://(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d+|\*)")


def check_zmq_exposure(address: str | None) -> str | None:
    """Why serving the ZeroMQ endpoint on ``address`` is refused, or None: it has no
    authentication, so it stays on this machine (loopback TCP or an ipc:// socket)."""
    if address is None or address.startswith("ipc://"):
        return None
    match = _ZMQ_TCP.fullmatch(address)
    if match is None:
        return (f"--zmq {address}: give tcp://127.0.0.1:PORT or ipc://PATH")
    host = match["host"].strip("[]")
    if not is_loopback(host):
        return _zmq_exposed(host)
    return None


def _zmq_exposed(host: str) -> str:
    return (f"refusing to serve ZeroMQ on {host}: the endpoint has no authentication. "
            "Bind it to 127.0.0.1 (or ipc://PATH) and reach other machines over HTTP "
            "with --auth sigv4")


def local_url(listening: socket.socket) -> str:
    """The URL a process of this machine reaches ``listening`` at (a wildcard address
    is reached on loopback)."""
    host, port = listening.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{_host_port(host, port)}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only loopback addresses.  It is resolved as ``bind``
    resolves it, so every spelling the resolver accepts counts: ``localhost``,
    ``127.1``, ``127.0.0.2``, ``::1``, ``0:0:0:0:0:0:0:1``...; an empty host (every
    interface) or one that does not resolve does not."""
    try:
        infos = socket.getaddrinfo(host or None, 0, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(_loopback_address(info[4][0]) for info in infos)


def _loopback_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.partition("%")[0])  # without an IPv6 scope
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 (Python 3.11 does not look inside)
    return ip.is_loopback


def serve(options: ServeOptions) -> int:
    """Run until stopped by a signal; returns the exit status (1: an address could not
    be bound, 2: it is not loopback and requests need no signature; either said in one
    line on stderr)."""
    try:
        sockets, listener = _bind(options)
    except _Unbound as exc:
        print(f"fastinvoke serve: {exc}", file=sys.stderr)
        return 1
    # What was bound decides, whatever the host's spelling or the resolver's answer now.
    refusal = _bound_exposure(options, sockets, listener)
    status, api_sockets = 2, []
    try:
        api_sockets = [] if refusal is not None else _bind_api(options)
    except _Unbound as exc:
        refusal, status = str(exc), 1
    if refusal is None and api_sockets and not all(
            _loopback_address(sock.getsockname()[0]) for sock in api_sockets):
        # The API port takes no signatures (API Gateway's authorizers are not emulated).
        refusal = (f"refusing to serve the template's API routes on {options.host}: the API "
                   "port has no authentication. Bind 127.0.0.1, or add --no-api")
    if refusal is not None:
        for sock in sockets + api_sockets:
            sock.close()
        if listener is not None:
            listener.close()
        print(f"fastinvoke serve: {refusal}", file=sys.stderr)
        return status
    try:
        return uvloop.run(_serve(options, sockets, listener, api_sockets))
    finally:  # what was bound and never served on (serving took the others over)
        for sock in sockets + api_sockets:
            sock.close()
        if listener is not None and not listener.socket.closed:
            listener.close()


def _bound_exposure(options: ServeOptions, sockets: list[socket.socket],
                    listener: ZmqListener | None) -> str | None:
    if options.keys is None and not all(
            _loopback_address(sock.getsockname()[0]) for sock in sockets):
        return _exposed(options.host)
    tcp = None if listener is None else _ZMQ_TCP.fullmatch(listener.address)
    if tcp is not None and not _loopback_address(tcp["host"].strip("[]")):
        return _zmq_exposed(tcp["host"].strip("[]"))
    return None


class _Unbound(Exception):
    """An address of ``serve`` cannot be bound; the message says which and what to do."""


def _bind(options: ServeOptions) -> tuple[list[socket.socket], ZmqListener | None]:
    """The HTTP sockets and the ZeroMQ socket, bound (and listening) before anything starts."""
    http = _host_port(options.host, options.port)
    try:
        sockets = bind(options.host, options.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _Unbound(f"{http} is in use by another program; pick another with "
                           "--port N") from None
        raise _Unbound(f"cannot listen on {http}: {exc.strerror or exc}; check --host and "
                       "--port") from None
    if options.zmq is None:
        return sockets, None
    try:
        return sockets, ZmqListener(options.zmq)
    except OSError as exc:
        http_port = sockets[0].getsockname()[1]
        for sock in sockets:
            sock.close()
        tcp = _ZMQ_TCP.fullmatch(options.zmq)
        if exc.errno != errno.EADDRINUSE or tcp is None:
            raise _Unbound(str(exc)) from None
        zmq = _host_port(tcp["host"].strip("[]"), tcp["port"])
        if tcp["port"] == str(http_port):
            raise _Unbound(f"--zmq {options.zmq} takes the Lambda API's own port (--port); "
                           f"pick another with --zmq tcp://{tcp['host']}:N") from None
        raise _Unbound(f"{zmq} is in use by another program; pick another with --zmq "
                       f"tcp://{tcp['host']}:N") from None


def _bind_api(options: ServeOptions) -> list[socket.socket]:
    """The API port's sockets, when the template has routes to serve there."""
    if not options.routes or options.api_port is None:
        return []
    try:
        return bind(options.host, options.api_port)
    except OSError as exc:
        where = _host_port(options.host, options.api_port)
        if exc.errno == errno.EADDRINUSE:
            raise _Unbound(f"{where} (the API port) is in use by another program; pick another "
                           "with --api-port N, or add --no-api") from None
        raise _Unbound(f"cannot listen on {where}: {exc.strerror or exc}; check --api-port") \
            from None


def _host_port(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _serve(options: ServeOptions, sockets: list[socket.socket],
                 listener: ZmqListener | None, api_sockets: list[socket.socket]) -> int:
    loop = asyncio.get_running_loop()
    invoker = Invoker(options.state_dir, max_workers=options.max_workers,
                      memory_budget_mb=options.memory_budget_mb, region=options.region,
                      sandbox=options.sandbox, ray_address=options.ray_address,
                      overcommit=options.overcommit, sqs_endpoint=options.sqs_endpoint,
                      iam=options.iam, credentials_lifetime_s=options.credentials_lifetime_s)
    # Where a function's boto3 finds this server (AWS_ENDPOINT_URL_LAMBDA): known before
    # any function starts, the socket being bound already.
    invoker.endpoint_url = local_url(sockets[0])
    for role in options.roles:
        invoker.put_role(role.arn, role.policies, role.managed)
    endpoint: ZmqEndpoint | None = None
    # The event sources that invoke by themselves: stopped before the Invoker closes.
    scheduler = Scheduler(invoker.invoke, options.schedules)
    mappings = _mappings(invoker, options)
    reloader: Reloader | None = None
    pollers: list[BucketPoller] = []
    try:
        notifier, pollers = _s3_events(invoker, options)
        functions = Functions(invoker, LayerStore(invoker.state_dir, options.region,
                                                  invoker.account_id, options.layers))
        for name, reason in options.unloadable.items():
            invoker.mark_unloadable(name, reason)
        for note in await asyncio.to_thread(functions.start, options.functions):
            print(f"note: {note}", file=sys.stderr)
        for name, settings in options.event_configs.items():
            invoker.event_invoke_config(name, **settings)
        for line in await asyncio.to_thread(publish_aliases, invoker, options.aliases):
            print(f"fastinvoke: alias {line}", file=sys.stderr)
        if options.watch is not None:
            template_path, load = options.watch
            reloader = Reloader(invoker, functions, template_path, load, lambda line: print(
                f"fastinvoke: {line}", file=sys.stderr, flush=True))
            reloader.start(Template(functions=options.functions))
        _say_resumed(invoker)
        verifier = None if options.keys is None else Verifier(options.keys,
                                                              region=options.region)
        urls = FunctionUrls(invoker.state_dir, options.region)
        for name, (auth, mode, cors) in options.function_urls.items():
            urls.put(name, auth, mode, cors)
        await asyncio.to_thread(mappings.start, [*options.sqs_mappings,
                                                 *options.stream_mappings])
        roles = None if invoker.credentials is None else RoleAuthorizer(
            invoker.credentials, invoker.roles, options.region, invoker.account_id)
        api = LambdaApi(invoker, functions, Metrics(invoker), verifier, urls, mappings, roles,
                        notifier=notifier)
        server = HttpServer(api, options.limits)
        port = urls.port = await server.listen(sockets)
        servers = [server]
        routes = RouteTable(options.routes)
        if api_sockets:
            api = HttpServer(Gateway(invoker, routes),
                             dataclasses.replace(options.limits, max_body=API_BODY_LIMIT), raw=True,
                             error_page=gateway_error_page)
            api_port = await api.listen(api_sockets)
            servers.append(api)
        if listener is not None:
            endpoint = ZmqEndpoint(invoker, listener)
            endpoint.start(loop)
        scheduler.start()
        for poller in pollers:
            poller.start()
        stop, now = asyncio.Event(), asyncio.Event()

        def on_signal(signum: int) -> None:
            if stop.is_set() and signum == signal.SIGINT:
                now.set()
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        url = f"http://{_host_port(options.host, port)}"
        serverfile.announce(invoker.state_dir, url)
        print(f"fastinvoke: serving the Lambda API on {url} "
              f"({len(functions.records)} functions, state in {invoker.state_dir})", flush=True)
        if api_sockets:
            table = routes.table()
            print(f"fastinvoke: serving {len(table)} API routes on "
                  f"http://{_host_port(options.host, api_port)}\n  " + "\n  ".join(table),
                  flush=True)
        if endpoint is not None:
            print(f"fastinvoke: serving Invoke over ZeroMQ on {endpoint.address}", flush=True)
        for name in options.function_urls:
            print(f"fastinvoke: the function URL of {name}: {urls.url(urls.get(name))}",
                  flush=True)
        _say_schedules(scheduler)
        _say_s3_events(notifier, url, options.s3_endpoint)
        await stop.wait()
        api.stopping = True
        for each in servers:
            each.stop_accepting()
        answering = sum(each.answering for each in servers) + (
            endpoint.answering if endpoint else 0)
        if answering:
            print(f"fastinvoke: stopping: finishing {answering} requests (at most "
                  f"{options.grace_s:g} s; Ctrl-C again to stop now)", file=sys.stderr, flush=True)
            drains = [each.drain(options.grace_s) for each in servers]
            if endpoint is not None:
                drains.append(endpoint.drain(options.grace_s))
            waits = [loop.create_task(asyncio.wait(map(loop.create_task, drains))),
                     loop.create_task(now.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        for each in servers:
            each.abort()
    finally:
        if reloader is not None:
            reloader.stop()
        serverfile.withdraw(invoker.state_dir)
        scheduler.stop()
        for poller in pollers:
            await asyncio.to_thread(poller.stop)
        await asyncio.to_thread(mappings.stop)
        if endpoint is not None:
            endpoint.close()
        await asyncio.to_thread(invoker.close)
    print("fastinvoke: stopped", file=sys.stderr, flush=True)
    return 0


def _mappings(invoker: Invoker, options: ServeOptions) -> Mappings:
    """The event source mappings, each kind polled at its endpoint (``--sqs-endpoint``,
    ``--dynamodb-endpoint``, ``--kinesis-endpoint``; not at all without it)."""
    mappings: Mappings
    pollers: dict[str, Callable[[Mapping], Callable[[], None]]] = {}

    def invoke(function: str, event: bytes) -> InvokeResult:
        return invoker.invoke(function, event)

    if (queues := options.sqs_endpoint) is not None:
        pollers[SQS] = lambda mapping: Poller(mapping, queues, invoke, mappings.record).stop
    send_failure = failure_sender(invoker.state_dir, options.sqs_endpoint)

    def read_stream(mapping: Mapping, endpoint: str) -> Callable[[], None]:
        return StreamPoller(mapping, stream_source(mapping, endpoint), invoke, mappings.record,
                            Checkpoints(invoker.state_dir, mapping.uuid), send_failure,
                            invoker.function_arn(mapping.function)).stop

    for kind, endpoint in ((DYNAMODB, options.dynamodb_endpoint),
                           (KINESIS, options.kinesis_endpoint)):
        if endpoint is not None:
            pollers[kind] = functools.partial(read_stream, endpoint=endpoint)
    mappings = Mappings(invoker.state_dir, pollers)
    return mappings


def _s3_events(invoker: Invoker, options: ServeOptions) -> tuple[Notifier, list[BucketPoller]]:
    """Where the template's S3 events come from: the webhook, or with ``--s3-endpoint``
    a poller for each subscribed bucket (which the webhook then refuses)."""
    endpoint = options.s3_endpoint
    buckets = sorted({subscription.bucket for subscription in options.s3_subscriptions})
    notifier = Notifier(options.s3_subscriptions, invoker.invoke, buckets if endpoint else ())
    if endpoint is None:
        return notifier, []
    forget_others(invoker.state_dir, buckets)
    return notifier, [BucketPoller(bucket, endpoint, options.region,
                                   invoker.state_dir, options.s3_poll_interval_s,
                                   notifier.deliver) for bucket in buckets]


def _say_s3_events(notifier: Notifier, url: str, endpoint: str | None) -> None:
    if not notifier.subscriptions:
        return
    where = f"polling {endpoint}" if endpoint is not None else \
        f"from a store's webhook at POST {url}{s3_webhook.PATH}"
    print(f"fastinvoke: S3 events ({where})\n  " + "\n  ".join(
        subscription.describe() for subscription in notifier.subscriptions), flush=True)


def _say_schedules(scheduler: Scheduler) -> None:
    fires = scheduler.next_fires()
    if not fires:
        return
    lines = [f"{schedule.source} {schedule.expression} ({schedule.timezone}) -> "
             f"{schedule.function}, next "
             f"{'never' if fire is None else fire.isoformat(timespec='seconds')}"
             for schedule, fire in fires]
    print(f"fastinvoke: firing {len(fires)} schedules\n  " + "\n  ".join(lines), flush=True)


def _say_resumed(invoker: Invoker) -> None:
    """How many of the Event invocations a previous run left will run: counted once the
    template's functions and Event settings apply, since they decide."""
    stats = invoker.event_stats()
    resumable, left = stats["resumable"], stats["recovered"] - stats["resumable"]
    if resumable:
        # Which of the redelivered are resumable is not known: at most all of them.
        started = min(stats["redelivered"], resumable)
        about = "" if not started else (
            f" ({'up to ' if left else ''}{started} had started before the last run ended: "
            "they run again)")
        print(f"fastinvoke: {resumable} queued Event invocations resumed from "
              f"{invoker.state_dir}{about}", file=sys.stderr, flush=True)
    if left:
        print(f"fastinvoke: {left} queued Event invocations in {invoker.state_dir} are not "
              "resumed: their function is not served, its reserved concurrency is 0, or they "
              "are past its maximum event age", file=sys.stderr, flush=True)
