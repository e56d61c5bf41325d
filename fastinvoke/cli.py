"""The ``fastinvoke`` command line (``python -m fastinvoke`` is the same program).

Subcommands take their functions from a SAM template and run them embedded, in this
process's own warm pool.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from .config import ACCOUNT_ID, FunctionConfig
from .errors import FastInvokeError
from .iam.credentials import LIFETIME_S
from .iam.lambda_actions import KNOWN_ACTIONS
from .iam.policy import MalformedPolicyDocumentException
from .iam.roles import Roles, RoleSpec, read_roles_file
from .invoker import Invoker
from .limits import MAX_TIMEOUT_S
from .metricfilter_command import parser as metric_filter_parser
from .readouts import billing_command, logs_command
from .result import InvokeResult
from .sam import Template, load_template
from .sources.mappings import Mapping
from .sources.samples import TYPES as SAMPLE_TYPES
from .sources.samples import sample
from .stack import deploy


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:2] == ["logs", "metric-filter"]:  # actions of logs, not a function's name
        args = metric_filter_parser().parse_args(arguments[2:])
    else:
        args = _parser().parse_args(arguments)
    try:
        return int(args.run(args))
    except FastInvokeError as exc:
        print(f"fastinvoke: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    """The commands and their options (declarations: alike in shape, each its own)."""
    parser = argparse.ArgumentParser(
        prog="fastinvoke",
        description="Run AWS-Lambda-style functions on this machine: warm, isolated, metered.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    invoke = commands.add_parser(
        "invoke", help="invoke a function from a SAM template or of a running server",
        description="Invoke a function, embedded from a SAM template or through a running "
        "`fastinvoke serve`, as `aws lambda invoke` would; prints the response payload, then "
        "the log tail with --log-type Tail.",
    )
    invoke.add_argument("name", help="the function's name (FunctionName or logical id)")
    _add_target(invoke)
    invoke.add_argument("--invocation-type", default="RequestResponse",
                        choices=("RequestResponse", "Event", "DryRun"))
    invoke.add_argument("--log-type", default="None", choices=("None", "Tail"))
    invoke.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep logs here (read them with `fastinvoke logs`); default: a "
                        "private directory removed afterwards")
    invoke.set_defaults(run=_invoke)

    serve = commands.add_parser(
        "serve", help="serve the Lambda API over HTTP (boto3, the AWS CLI)",
        description="Serve AWS Lambda's REST API (2015-03-31): point a boto3 client or `aws "
        "lambda --endpoint-url` at it. Functions come from a SAM template and from "
        "CreateFunction. SIGTERM or Ctrl-C stops it gracefully; Ctrl-C twice stops at once.")
    serve.add_argument("--template", type=Path, metavar="FILE",
                       help="SAM template.yaml whose functions to serve")
    serve.add_argument("--debug", metavar="FUNCTION",
                       help="run this function of the template in one worker that a debugger "
                       "attaches to (debugpy for Python, node --inspect for Node.js)")
    serve.add_argument("--debug-port", type=int, default=5678, metavar="PORT",
                       help="where the --debug function's worker listens (default 5678)")
    serve.add_argument("--watch", action=argparse.BooleanOptionalAction, default=None,
                       help="reload a function when its files change, and the template's "
                       "functions when it changes (on by default with --template)")
    _add_template_options(serve)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; any other needs --auth sigv4)")
    serve.add_argument("--port", type=int, default=3001, help="port (default 3001; 0: any)")
    serve.add_argument("--api-port", type=int, default=3000, metavar="PORT",
                       help="serve the template's API Gateway routes (its Api and HttpApi "
                       "events) on this port, as `sam local start-api` (default 3000; 0: any)")
    serve.add_argument("--no-api", dest="api_port", action="store_const", const=None,
                       help="do not serve the template's API routes")
    serve.add_argument("--sqs-endpoint", metavar="URL",
                       help="read the SQS queues of event source mappings (the template's SQS "
                       "events, CreateEventSourceMapping) at this endpoint: AWS's, or any "
                       "SQS-compatible server's; needs pip install 'fastinvoke[sqs]'")
    serve.add_argument("--dynamodb-endpoint", metavar="URL",
                       help="read the DynamoDB streams of event source mappings (the "
                       "template's DynamoDB events, CreateEventSourceMapping) at this endpoint; "
                       "needs pip install 'fastinvoke[streams]'")
    serve.add_argument("--kinesis-endpoint", metavar="URL",
                       help="read the Kinesis streams of event source mappings at this "
                       "endpoint; needs pip install 'fastinvoke[streams]'")
    serve.add_argument("--s3-endpoint", metavar="URL",
                       help="poll the buckets of the template's S3 events at this endpoint, "
                       "for an S3-compatible store that posts no webhooks (without it, stores "
                       "post their notifications to /s3-events); needs pip install "
                       "'fastinvoke[s3]'")
    serve.add_argument("--s3-poll-interval", type=float, default=1.0, metavar="SECONDS",
                       help="how often --s3-endpoint's buckets are listed (default 1)")
    serve.add_argument("--schedules", action="store_true",
                       help="fire the template's Schedule and ScheduleV2 events (Event "
                       "invocations at EventBridge's times) while serving")
    serve.add_argument("--region", default="us-east-1",
                       help="the AWS region served: in ARNs, and the one requests must be "
                       "signed for with --auth sigv4 (default us-east-1)")
    serve.add_argument("--zmq", metavar="ADDRESS",
                       help="also serve Invoke on a ZeroMQ endpoint, tcp://127.0.0.1:3002 or "
                       "ipc://PATH (for fastinvoke.client.ZmqClient)")
    serve.add_argument("--state-dir", type=Path, metavar="DIR", default=Path(".fastinvoke"),
                       help="functions created over HTTP, logs and meters (default: .fastinvoke)")
    serve.add_argument("--max-workers", type=int, metavar="N",
                       help="most workers a function may have (default: its concurrency limit, "
                       "as Lambda scales out); more invocations wait for one")
    serve.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                       help="run functions as this user, seeing this machine's files and "
                       "processes (default: each in a sandbox of its own, when run as root)")
    serve.add_argument("--memory-budget", type=int, metavar="MB",
                       help="most memory all workers' limits may add up to (default: the "
                       "machine's RAM)")
    serve.add_argument("--auth", choices=("sigv4",),
                       help="require requests signed with AWS Signature V4 (needs --keys)")
    serve.add_argument("--keys", type=Path, metavar="FILE",
                       help="JSON object of access key id -> secret key, for --auth sigv4")
    serve.add_argument("--iam", action="store_true",
                       help="give each function its role's credentials and check what they "
                       "sign against the role's policies (the template's Role and Policies, "
                       "--roles); default: functions keep your AWS credentials")
    serve.add_argument("--roles", type=Path, metavar="FILE",
                       help="with --iam: a JSON object of role name or ARN -> its policy "
                       "documents, for functions created with that Role")
    serve.add_argument("--credentials-lifetime", type=float, default=LIFETIME_S,
                       metavar="SECONDS", help="with --iam: how long a function's role "
                       "credentials last before its environments are renewed (default 43200)")
    serve.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="time a client has to send a whole request (default 30)")
    serve.add_argument("--keep-alive", type=float, default=60.0, metavar="SECONDS",
                       help="idle time after which a connection is closed (default 60)")
    serve.add_argument("--ray-address", metavar="ADDRESS", default=os.environ.get("RAY_ADDRESS"),
                       help="run every function's workers on this Ray cluster (auto, or "
                       "HOST:PORT of its head; default: $RAY_ADDRESS, else this machine); "
                       "needs pip install 'fastinvoke[ray]'")
    serve.add_argument("--overcommit", type=float, default=1.0, metavar="FACTOR",
                       help="with --ray-address: divide each worker's CPU and memory "
                       "reservation by FACTOR (load tests on a small cluster; default 1)")
    serve.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="on SIGTERM, how long running invocations may take to finish "
                       "(default 30)")
    serve.set_defaults(run=_serve)

    show = commands.add_parser(
        "logs", help="print a function's log lines; logs metric-filter put|list|delete",
        description="Print a function's log lines (START, its output, END, REPORT) from a "
        "state directory's log store, oldest first. `fastinvoke logs metric-filter "
        "put|list|delete` manages the CloudWatch metric filters of its log group.")
    show.add_argument("name", help="the function's name (its LoggingConfig's log group is "
                      "read), or a log group: /aws/lambda/NAME, /my/group")
    _add_state_dir(show)
    show.add_argument("--endpoint", metavar="URL",
                      help="read them from the server at http://HOST:PORT instead")
    show.add_argument("--follow", action="store_true", help="keep printing new lines")
    show.add_argument("--filter", metavar="PATTERN",
                      help='a CloudWatch Logs filter pattern: terms ("a phrase", ?any, '
                      '-not), JSON ({ $.level = "ERROR" }) or space-delimited ([a, ..., b > 1])')
    show.add_argument("--since", metavar="DURATION", help="only lines newer than this: "
                      "30s, 5m, 2h, 1d, 1w")
    show.set_defaults(run=logs_command)

    billing = commands.add_parser(
        "billing", help="print what the functions' invocations would cost on Lambda",
        description="Print requests, GB-seconds, the free tier used and the cost, per function "
        "and in total, from a state directory's meters (AWS's us-east-1 prices).")
    billing.add_argument("name", nargs="?", help="only this function")
    _add_state_dir(billing)
    billing.add_argument("--endpoint", metavar="URL", help="the live meters of the server at "
                         "http://HOST:PORT (the server running on --state-dir is read live too)")
    billing.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    billing.set_defaults(run=billing_command)

    event = commands.add_parser(
        "event", help="print a sample event (API Gateway, function URL, SQS, S3, schedule)",
        description="Print a realistic event of TYPE as JSON, to invoke a function with by "
        "hand (fastinvoke invoke NAME --payload @-), as `sam local generate-event` does.")
    event.add_argument("type", choices=SAMPLE_TYPES, metavar="TYPE",
                       help=f"one of {', '.join(SAMPLE_TYPES)}")
    event.add_argument("--method", default="GET", help="HTTP method (apigateway, http-api, "
                       "function-url; default GET)")
    event.add_argument("--path", default="/hello", help="path and query (default /hello)")
    event.add_argument("--body", default="", help="the request body, or the SQS message body")
    event.add_argument("--queue", default="my-queue", help="SQS queue name")
    event.add_argument("--count", type=int, default=1, help="SQS records (default 1)")
    event.add_argument("--bucket", default="my-bucket", help="S3 bucket")
    event.add_argument("--key", default="example.txt", help="S3 object key")
    event.add_argument("--rule", default="my-schedule", help="the schedule's rule name")
    event.add_argument("--region", default="us-east-1")
    event.set_defaults(run=_event)

    bench = commands.add_parser(
        "bench", help="load-test a function: latency percentiles, throughput, errors",
        description="Call a function over and over, from N concurrent callers (closed loop) or "
        "at a fixed rate (open loop, timed from each request's intended send time so that a "
        "stall shows in the tail), and report latency percentiles, throughput and errors.")
    bench.add_argument("name", help="the function's name")
    _add_target(bench)
    bench.add_argument("--concurrency", type=int, default=1, metavar="N",
                       help="callers (closed loop) or most requests in flight (open loop), "
                       "batches with --batch; default 1")
    bench.add_argument("--rate", type=float, metavar="PER_S",
                       help="open loop: send this many requests per second")
    length = bench.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, metavar="S",
                        help="run this many seconds (default 10)")
    length.add_argument("--requests", type=int, metavar="N",
                        help="run this many requests (with --batch: invocations, rounded up "
                        "to whole batches)")
    bench.add_argument("--warmup", type=int, default=0, metavar="N",
                       help="unrecorded requests first (new workers start during them)")
    bench.add_argument("--batch", type=int, default=1, metavar="N",
                       help="each call is one invoke_many of N copies of the payload "
                       "(--template or the ZeroMQ endpoint; not http://); each invocation "
                       "counts as a request, timed from its batch's start to its end: "
                       "throughput and --rate are invocations/s, --requests and --warmup are "
                       "rounded up to whole batches (default 1)")
    bench.add_argument("--json", action="store_true",
                       help="print one JSON object (the last line) instead of the report")
    bench.add_argument("--plot", type=Path, metavar="FILE.png|FILE.html",
                       help="write latency percentiles and throughput over time")
    bench.set_defaults(run=_bench)
    return parser


def _add_template_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--parameter-overrides", nargs="+", default=[], metavar="KEY=VALUE",
                         help="the template's parameters, as SAM takes them: Stage=prod, or "
                         "ParameterKey=Stage,ParameterValue=prod")
    command.add_argument("--layer", action="append", default=[], metavar="ARN=DIR",
                         help="a local copy of a layer the template names by ARN: DIR holds "
                         "what the layer's zip holds (python/, nodejs/...); repeatable")


def _template(args: argparse.Namespace, **parameters: str) -> Template:
    """The ``--template`` with the command's ``--parameter-overrides`` and ``--layer``s."""
    return load_template(args.template, layers=layer_dirs(args.layer), parameters={
        **parameters, **parameter_overrides(args.parameter_overrides)})


def layer_dirs(values: list[str]) -> dict[str, str]:
    """``--layer ARN=DIR`` options as a dict; SystemExit if malformed."""
    layers = {}
    for value in values:
        arn, sep, directory = value.rpartition("=")
        if not sep or not arn.startswith("arn:") or not directory:
            raise SystemExit(f"fastinvoke: --layer {value}: give ARN=DIR, the layer's ARN and "
                             "a directory holding its content")
        layers[arn] = os.path.abspath(directory)
    return layers


def parameter_overrides(values: list[str]) -> dict[str, str]:
    """SAM's ``--parameter-overrides`` (either form) as a dict; SystemExit if malformed."""
    overrides = {}
    for value in values:
        long = re.fullmatch(r"ParameterKey=([^,]+),ParameterValue=(.*)", value)
        key, sep, text = (long[1], "=", long[2]) if long else value.partition("=")
        if not sep or not key:
            raise SystemExit(f"fastinvoke: --parameter-overrides {value}: give KEY=VALUE or "
                             "ParameterKey=KEY,ParameterValue=VALUE")
        overrides[key] = text
    return overrides


def _add_target(command: argparse.ArgumentParser) -> None:
    """Which function to call (``--template`` or ``--endpoint``) and with what event."""
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--template", type=Path, metavar="FILE",
                       help="SAM template.yaml holding the function (run it embedded, in "
                       "this process)")
    where.add_argument("--endpoint", metavar="URL",
                       help="a running server: http://HOST:PORT (its Lambda API) or "
                       "tcp://HOST:PORT, ipc://PATH (its ZeroMQ endpoint)")
    _add_template_options(command)
    command.add_argument("--payload", default="{}", metavar="JSON|@FILE",
                         help="the event: JSON text, @FILE to read it from a file, or @- "
                         "from stdin (fastinvoke event TYPE | fastinvoke invoke ...)")


def _add_state_dir(command: argparse.ArgumentParser) -> None:
    """``--state-dir`` for the commands that read what earlier runs left there."""
    command.add_argument("--state-dir", type=Path, metavar="DIR", default=Path(".fastinvoke"),
                         help="the state directory the functions ran with (default: .fastinvoke)")


def _invoke(args: argparse.Namespace) -> int:
    log_type = None if args.log_type == "None" else args.log_type
    if args.endpoint is not None:
        from .remote import invoke_remote

        _print_result(invoke_remote(args.endpoint, args.name, _read_payload(args.payload),
                                    invocation_type=args.invocation_type, log_type=log_type))
        return 0
    template = _template(args)
    _print_notes(template)
    payload = _read_payload(args.payload)
    name = args.name.partition(":")[0]  # NAME, or NAME:VERSION / NAME:ALIAS
    if not any(config.name == name for config in template.functions):
        reason = template.unloadable.get(name)
        known = ", ".join(c.name for c in template.functions) or "none"
        print(f"fastinvoke: function '{args.name}' "
              + (f"cannot run here: {reason}" if reason else
                 f"is not in {args.template} (functions: {known})"), file=sys.stderr)
        return 2
    with Invoker(args.state_dir) as invoker:
        deploy(invoker, template, only=name)
        result = invoker.invoke(args.name, payload, invocation_type=args.invocation_type,
                                log_type=log_type)
        if args.invocation_type == "Event":
            # The call returned at once (202); the function still runs: let it finish
            # before this process, and the pool with it, ends.
            invoker.wait_for_events(name)
        _print_result(result)
    return 0


def _print_result(result: InvokeResult) -> None:
    print(f"StatusCode: {result.status_code}" + (
        f"  FunctionError: {result.function_error}" if result.function_error else ""),
        file=sys.stderr)
    if result.payload:
        sys.stdout.write(result.payload.decode("utf-8", "replace") + "\n")
    if result.log_result:
        sys.stdout.write(base64.b64decode(result.log_result).decode("utf-8", "replace"))


# An AWS region's name, as botocore accepts one (a host name label).
_REGION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _serve(args: argparse.Namespace) -> int:
    from .http.serve import (  # their imports cost the other commands
        ServeOptions,
        check_exposure,
        check_zmq_exposure,
        serve,
    )
    from .http.server import Limits
    from .http.sigv4 import load_keys

    if args.watch and args.template is None:
        print("fastinvoke: --watch reloads a template's functions: give --template FILE",
              file=sys.stderr)
        return 2
    if (args.auth is None) != (args.keys is None):
        print("fastinvoke: --auth sigv4 and --keys FILE go together: give both to require "
              "signed requests, or neither", file=sys.stderr)
        return 2
    keys = None
    if args.keys is not None:
        try:
            keys = load_keys(args.keys)
        except ValueError as exc:
            print(f"fastinvoke: {exc}", file=sys.stderr)
            return 2
    if (args.roles is not None or args.credentials_lifetime != LIFETIME_S) and not args.iam:
        print("fastinvoke: --roles and --credentials-lifetime go with --iam (functions get "
              "their role's credentials): add --iam", file=sys.stderr)
        return 2
    if args.credentials_lifetime < 60:
        print(f"fastinvoke: --credentials-lifetime {args.credentials_lifetime}: give at least "
              "60 seconds", file=sys.stderr)
        return 2
    if not _REGION.fullmatch(args.region):
        print(f"fastinvoke: --region {args.region}: give an AWS region name, such as "
              "us-east-1", file=sys.stderr)
        return 2
    if args.overcommit < 1:
        print(f"fastinvoke: --overcommit {args.overcommit}: give a factor of at least 1",
              file=sys.stderr)
        return 2
    refusal = check_exposure(args.host, keys) or check_zmq_exposure(args.zmq)
    if refusal is not None:
        print(f"fastinvoke: {refusal}", file=sys.stderr)
        return 2
    for flag, endpoint, extra in (("--sqs-endpoint", args.sqs_endpoint, "sqs"),
                                  ("--s3-endpoint", args.s3_endpoint, "s3"),
                                  ("--dynamodb-endpoint", args.dynamodb_endpoint, "streams"),
                                  ("--kinesis-endpoint", args.kinesis_endpoint, "streams")):
        if endpoint is None:
            continue
        try:
            import boto3  # noqa: F401 - the client the pollers use
        except ImportError:
            print(f"fastinvoke: {flag} needs boto3: pip install 'fastinvoke[{extra}]'",
                  file=sys.stderr)
            return 2
    if args.s3_endpoint is not None and not args.s3_endpoint.startswith(("http://",
                                                                         "https://")):
        print(f"fastinvoke: --s3-endpoint {args.s3_endpoint}: give the store's URL, such as "
              "http://127.0.0.1:9000", file=sys.stderr)
        return 2
    if args.s3_poll_interval <= 0:
        print(f"fastinvoke: --s3-poll-interval {args.s3_poll_interval}: give a number of "
              "seconds above 0", file=sys.stderr)
        return 2
    if args.debug is not None and args.template is None:
        print("fastinvoke: --debug names a function of --template FILE: give both",
              file=sys.stderr)
        return 2
    functions, event_configs, routes, function_urls, schedules = [], {}, [], {}, []
    sqs_mappings, unloadable, aliases, s3_subscriptions = [], {}, {}, []
    stream_mappings: list[Mapping] = []
    if args.template is not None:
        template = _template(args, **{"AWS::Region": args.region})
        _print_notes(template)
        functions, event_configs = template.functions, template.event_configs
        if args.debug is not None:
            debugged = _debugged(functions, args.debug, args.debug_port)
            if debugged is None:
                print(f"fastinvoke: --debug {args.debug}: no such function in "
                      f"{args.template} (functions: "
                      f"{', '.join(c.name for c in template.functions) or 'none'})",
                      file=sys.stderr)
                return 2
            functions = debugged
        routes, function_urls = template.routes, template.url_configs
        sqs_mappings, unloadable = template.sqs_mappings, template.unloadable
        aliases, s3_subscriptions = template.aliases, template.s3_subscriptions
        stream_mappings = template.stream_mappings
        for kind, endpoint in (("SQS", args.sqs_endpoint), ("DynamoDB", args.dynamodb_endpoint),
                               ("Kinesis", args.kinesis_endpoint)):
            count = sum(mapping.kind == kind.lower()
                        for mapping in (*sqs_mappings, *stream_mappings))
            if count and endpoint is None:
                print(f"note: the template's {count} {kind} events are read only with "
                      f"--{kind.lower()}-endpoint URL", file=sys.stderr)
        if args.schedules:
            for error in template.schedule_errors:
                print(f"fastinvoke serve: schedule {error}", file=sys.stderr)
            if template.schedule_errors:
                return 2
            schedules = template.schedules
        elif template.schedules or template.schedule_errors:
            count = len(template.schedules) + len(template.schedule_errors)
            print(f"note: the template's {count} schedules fire only with --schedules",
                  file=sys.stderr)
    roles = _roles(args, template.roles if args.template is not None else [])
    if roles is None:
        return 2
    return serve(ServeOptions(
        args.host, args.port, str(args.state_dir), keys, functions,
        Limits(read_timeout_s=args.read_timeout, keep_alive_s=args.keep_alive),
        args.shutdown_timeout, args.zmq, args.max_workers, args.memory_budget, event_configs,
        region=args.region, sandbox=args.sandbox, ray_address=args.ray_address,
        overcommit=args.overcommit, routes=routes, api_port=args.api_port,
        function_urls=function_urls, schedules=schedules, sqs_endpoint=args.sqs_endpoint,
        dynamodb_endpoint=args.dynamodb_endpoint, kinesis_endpoint=args.kinesis_endpoint,
        stream_mappings=stream_mappings,
        sqs_mappings=sqs_mappings, unloadable=unloadable, aliases=aliases,
        s3_subscriptions=s3_subscriptions, s3_endpoint=args.s3_endpoint,
        s3_poll_interval_s=args.s3_poll_interval,
        layers=layer_dirs(args.layer), iam=args.iam, roles=roles,
        credentials_lifetime_s=args.credentials_lifetime,
        watch=(args.template, lambda: _template(args, **{"AWS::Region": args.region}))
        if args.template is not None and args.watch is not False else None))


def _roles(args: argparse.Namespace, from_template: list[RoleSpec]) -> list[RoleSpec] | None:
    """With --iam, the template's roles and the roles file's, their documents checked as
    IAM checks them (what it accepts but may not mean is said); None when one is
    refused (said)."""
    if not args.iam:
        return []
    try:
        specs = [*from_template, *([] if args.roles is None else read_roles_file(args.roles))]
        checked = Roles(ACCOUNT_ID, KNOWN_ACTIONS)
        for spec in specs:
            checked.put(spec.arn, spec.policies, spec.managed)
    except MalformedPolicyDocumentException as exc:
        print(f"fastinvoke: MalformedPolicyDocument: {exc.message}; fix it and serve again",
              file=sys.stderr)
        return None
    for warning in checked.warnings:
        print(f"note: {warning}", file=sys.stderr)
    return specs


def _bench(args: argparse.Namespace) -> int:
    from .loadgen import Plan
    from .loadgen.command import bench

    duration = args.duration if args.duration is not None else 10.0
    plan = Plan(args.concurrency, args.rate, args.requests,
                None if args.requests is not None else duration, args.warmup, args.batch)
    return bench(args.name, _read_payload(args.payload), plan, template=args.template,
                 endpoint=args.endpoint, as_json=args.json, plot_path=args.plot,
                 parameters=parameter_overrides(args.parameter_overrides),
                 layers=layer_dirs(args.layer))


def _debugged(configs: list[FunctionConfig], name: str,
              port: int) -> list[FunctionConfig] | None:
    """``configs`` with function ``name`` debugged on ``port`` (its timeout Lambda's
    longest, so that a stop at a breakpoint does not end the invocation); None if the
    template has no such function."""
    if not any(config.name == name for config in configs):
        return None
    print(f"fastinvoke: {name} runs in one worker that waits for a debugger on "
          f"127.0.0.1:{port} (debugpy: VS Code's attach with connect.port {port}; Node.js: "
          "its inspector); its timeout is 900 s while debugged", file=sys.stderr)
    return [msgspec.structs.replace(config, debug_port=port, timeout_s=MAX_TIMEOUT_S)
            if config.name == name else config for config in configs]


def _read_payload(value: str) -> bytes:
    if value == "@-":
        return sys.stdin.buffer.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_bytes()
        except OSError as exc:
            raise SystemExit(
                f"fastinvoke: cannot read the payload file {value[1:]}: {exc}") from None
    return value.encode()


def _event(args: argparse.Namespace) -> int:
    document = sample(args.type, method=args.method, path=args.path, body=args.body,
                      queue=args.queue, count=args.count, bucket=args.bucket, key=args.key,
                      rule=args.rule, region=args.region)
    print(json.dumps(document, indent=2))
    return 0


def _print_notes(template: Template) -> None:
    for note in template.notes:
        print(f"note: {note}", file=sys.stderr)
    for name, reason in template.skipped.items():
        print(f"note: {name} skipped: {reason}", file=sys.stderr)
