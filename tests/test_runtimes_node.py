"""Node.js functions through a real Invoker: the bridge worker, the Runtime API, the shipped
bootstrap and this machine's ``node`` (docs/lambda-behaviour.md: "Runtime API", "Runtimes",
"The REPORT line and billing")."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    NO_NODE,
    NODE_RUNTIME,
    ONE_VCPU_MB,
    UUID,
    MakeFunction,
    alive,
    document,
    log_of,
    process_state,
    report_of,
    tail_text,
    wait_until,
    write_code,
)

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.errors import InvalidParameterValueException
from fastinvoke.pool.cgroups import detect
from fastinvoke.runtime.launch import NODE_RUNTIMES

pytestmark = pytest.mark.skipif(NODE_RUNTIME is None, reason=NO_NODE)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def console_line(level: str, message: str, request_id: str = UUID) -> re.Pattern[str]:
    """A console line as Lambda's Node.js runtime writes it (regex ``message``)."""
    return re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t" + request_id
                      + rf"\t{level}\t{message}$", re.MULTILINE)


@pytest.fixture
def node_function(make_function: MakeFunction, tmp_path: Path) -> Any:
    """``node_function(source, handler="index.handler", files=None, **config)`` writes
    ``index.js`` (and ``files``) into a fresh directory and creates a Node.js function."""
    numbers = itertools.count()

    def make(source: str | None, handler: str = "index.handler",
             files: dict[str, str] | None = None, **config: Any) -> str:
        code = tmp_path / f"node{next(numbers)}"
        write_code(code, ({"index.js": source} if source is not None else {}) | (files or {}))
        config.setdefault("memory_mb", ONE_VCPU_MB)
        return make_function(handler, code=str(code), runtime=NODE_RUNTIME, **config)

    return make


# -- the two classic examples -------------------------------------------------------------

def test_classic_sum_example(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("index.handler", code=str(EXAMPLES / "node-add"),
                         runtime=NODE_RUNTIME, memory_mb=ONE_VCPU_MB)
    first = invoker.invoke(name, {"value1": 10, "value2": 20}, log_type="Tail")
    assert (first.status_code, first.payload, first.function_error) == (200, b"30", None)
    assert report_of(tail_text(first))["init"] is not None  # a new worker: Init Duration
    second = invoker.invoke(name, {"value1": 1, "value2": 2}, log_type="Tail")
    assert second.payload == b"3"
    assert report_of(tail_text(second))["init"] is None  # warm: no Init Duration
    assert invoker.call(name, {"value1": 10, "value2": 20}) == 30


def test_classic_logger_example(invoker: Invoker, make_function: MakeFunction) -> None:
    name = make_function("index.handler", code=str(EXAMPLES / "node-log"),
                         runtime=NODE_RUNTIME, memory_mb=ONE_VCPU_MB)
    result = invoker.invoke(name, {"message": "hello from node"})
    assert (result.payload, result.function_error) == (b"null", None)
    text = log_of(invoker, name, result.request_id)
    assert console_line("INFO", "hello from node", result.request_id).search(text), text


# -- handler styles -----------------------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ("exports.handler = (e, c, cb) => cb(null, {sum: e.a + e.b});", {"sum": 3}),
    ("exports.handler = (e, c, cb) => { setTimeout(() => cb(null, 'later'), 5); };", "later"),
    ("exports.handler = async (e) => e.a * 10;", 10),
    ("exports.handler = (e) => new Promise((ok) => setTimeout(() => ok([e.b]), 5));", [2]),
    ("exports.handler = (e, context) => { context.succeed('succeeded'); };", "succeeded"),
    ("exports.handler = (e, context) => { context.done(null, {done: true}); };", {"done": True}),
    ("exports.handler = (e, context) => { context.done(); };", None),
    ("exports.handler = async () => {};", None),
    # A plain handler that never calls back: the loop empties, the result is null.
    ("exports.handler = (e, c) => { setTimeout(() => {}, 5); return 'ignored'; };", None),
    # Only the first completion counts.
    ("exports.handler = (e, c, cb) => { cb(null, 'first'); cb(null, 'second'); "
     "c.succeed('third'); };", "first"),
], ids=["callback", "callback-later", "async", "promise", "succeed", "done", "done-empty",
        "async-undefined", "no-callback", "first-completion-wins"])
def test_handler_styles(invoker: Invoker, node_function: Any, source: str,
                        expected: Any) -> None:
    name = node_function(source)
    result = invoker.invoke(name, {"a": 1, "b": 2})
    assert result.function_error is None, result.payload
    assert document(result) == expected


def test_esm_module_and_handler_in_a_subdirectory(invoker: Invoker, node_function: Any) -> None:
    esm = node_function(None, files={"app.mjs": "export const handler = async (e) => 'esm';"},
                        handler="app.handler")
    assert invoker.call(esm) == "esm"
    typed = node_function(None, handler="index.handler", files={
        "package.json": '{"type": "module"}',
        "index.js": "export async function handler() { return 'type module'; }"})
    assert invoker.call(typed) == "type module"
    nested = node_function(None, files={"src/api/app.js": "exports.api = {get: async () => 7};"},
                           handler="src/api/app.api.get")
    assert invoker.call(nested) == 7


def test_callback_waits_for_the_empty_event_loop_by_default(
        invoker: Invoker, node_function: Any) -> None:
    name = node_function("""
        exports.handler = (event, context, callback) => {
          callback(null, 'answered');
          setTimeout(() => console.log('timer ran before the response'), 50);
        };""")
    result = invoker.invoke(name, {})
    assert document(result) == "answered"
    assert "timer ran before the response" in log_of(invoker, name, result.request_id)


def test_callback_without_waiting_answers_at_once_and_the_rest_runs_next_time(
        invoker: Invoker, node_function: Any) -> None:
    """callbackWaitsForEmptyEventLoop = false: the response goes at once; the environment
    is frozen, and what was pending resumes in the next invocation (docs/lambda-behaviour.md,
    "Runtimes")."""
    name = node_function("""
        exports.handler = (event, context, callback) => {
          if (event.leave) {
            context.callbackWaitsForEmptyEventLoop = false;
            setTimeout(() => console.log('left over'), 300);
            return callback(null, 'first');
          }
          setTimeout(() => callback(null, 'second'), 600);  // fires after the 300 ms one
        };""")
    first = invoker.invoke(name, {"leave": True})
    assert document(first) == "first"
    assert "left over" not in log_of(invoker, name, first.request_id)
    second = invoker.invoke(name, {})
    assert document(second) == "second"
    assert "left over" in log_of(invoker, name, second.request_id)


def test_an_idle_runtime_is_frozen_and_module_state_is_kept(
        invoker: Invoker, node_function: Any) -> None:
    name = node_function("""
        let calls = 0;
        exports.handler = async () => ({calls: ++calls, pid: process.pid});""")
    first = invoker.call(name)
    assert first["calls"] == 1
    wait_until(lambda: process_state(first["pid"]) == "T",
               message=lambda: f"runtime state {process_state(first['pid'])}")
    second = invoker.call(name)
    assert second == {"calls": 2, "pid": first["pid"]}  # the same warm runtime
    assert invoker.recycle(name) == 1
    wait_until(lambda: not alive(first["pid"]))  # the runtime ended with its worker
    assert invoker.call(name)["calls"] == 1  # a new environment


# -- context and environment --------------------------------------------------------------

def test_context_and_environment(invoker: Invoker, node_function: Any, tmp_path: Path) -> None:
    name = node_function("""
        exports.handler = async (event, context) => ({
          awsRequestId: context.awsRequestId,
          invokedFunctionArn: context.invokedFunctionArn,
          functionName: context.functionName,
          functionVersion: context.functionVersion,
          memoryLimitInMB: context.memoryLimitInMB,
          logGroupName: context.logGroupName,
          logStreamName: context.logStreamName,
          clientContext: context.clientContext,
          identity: context.identity === undefined ? 'undefined' : context.identity,
          remaining: context.getRemainingTimeInMillis(),
          waits: context.callbackWaitsForEmptyEventLoop,
          cwd: process.cwd(),
          env: Object.fromEntries(['_HANDLER', 'LAMBDA_TASK_ROOT', 'AWS_EXECUTION_ENV', 'TZ',
            'AWS_LAMBDA_RUNTIME_API', 'AWS_LAMBDA_FUNCTION_NAME', 'PYTHONPATH', 'NODE_PATH',
            'AWS_REGION', 'MY_VAR'].map((k) => [k, process.env[k] === undefined ? null
              : process.env[k]])),
        });""", timeout_s=7, env={"MY_VAR": "mine"})
    result = invoker.invoke(name, {}, client_context={"custom": {"k": "v"}},
                            qualifier="$LATEST")
    got = document(result)
    code = str(tmp_path / "node0")
    assert got["awsRequestId"] == result.request_id
    assert got["invokedFunctionArn"] == invoker.function_arn(name) + ":$LATEST"
    assert (got["functionName"], got["functionVersion"], got["memoryLimitInMB"]) == (
        name, "$LATEST", str(ONE_VCPU_MB))
    assert got["logGroupName"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", got["logStreamName"])
    assert got["clientContext"] == {"custom": {"k": "v"}}
    assert got["identity"] == "undefined"
    assert 0 < got["remaining"] <= 7000 and got["waits"] is True
    assert got["cwd"] == code
    env = got["env"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env.pop("AWS_LAMBDA_RUNTIME_API"))
    assert env == {"_HANDLER": "index.handler", "LAMBDA_TASK_ROOT": code,
                   "AWS_EXECUTION_ENV": f"AWS_Lambda_{NODE_RUNTIME}", "TZ": ":UTC",
                   "AWS_LAMBDA_FUNCTION_NAME": name, "PYTHONPATH": None, "NODE_PATH": code,
                   "AWS_REGION": "us-east-1", "MY_VAR": "mine"}


def test_console_levels_and_multiline_messages(invoker: Invoker, node_function: Any) -> None:
    name = node_function("""
        exports.handler = async () => {
          console.warn('careful %d', 3);
          console.error({a: 1});
          console.info('two\\nlines');
        };""")
    result = invoker.invoke(name, {})
    text = log_of(invoker, name, result.request_id)
    for level, message in (("WARN", "careful 3"), ("ERROR", re.escape("{ a: 1 }")),
                           ("INFO", "two\rlines")):
        assert console_line(level, message, result.request_id).search(text), (level, text)


# -- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "error_type", "message", "traced"), [
    ("exports.handler = () => { throw new Error('boom'); };", "Error", "boom", True),
    ("exports.handler = (e, c, cb) => cb(new TypeError('bad type'));", "TypeError",
     "bad type", True),
    ("exports.handler = async () => { throw new RangeError('out'); };", "RangeError", "out",
     True),
    ("class Custom extends Error { constructor(m) { super(m); this.name = 'CustomError'; } }\n"
     "exports.handler = (e, c) => c.fail(new Custom('mine'));", "CustomError", "mine", True),
    ("exports.handler = (e, c, cb) => cb('just a string');", "string", "just a string", False),
    ("exports.handler = (e, c) => c.fail();", "string", "handled", False),
    # Raised by the runtime while sending the result: its frames are the runtime's.
    ("exports.handler = async () => { const a = {}; a.a = a; return a; };", "Error",
     "Unable to stringify response body", None),
], ids=["throw", "callback-error", "async-reject", "custom-fail", "string", "fail-empty",
        "unserializable"])
def test_function_errors_have_nodes_shape(invoker: Invoker, node_function: Any, source: str,
                                          error_type: str, message: str,
                                          traced: bool | None) -> None:
    name = node_function(source)
    result = invoker.invoke(name, {})
    assert result.function_error == "Unhandled"
    got = document(result)
    assert list(got) == ["errorType", "errorMessage", "trace"]
    assert (got["errorType"], got["errorMessage"]) == (error_type, message)
    if traced is False:
        assert got["trace"] == []
    else:
        assert got["trace"][0] == f"{error_type}: {message}"
        in_user_code = any("index.js" in frame for frame in got["trace"][1:])
        assert in_user_code == bool(traced), got["trace"]
    text = log_of(invoker, name, result.request_id)
    assert re.search(r"\tERROR\tInvoke Error \t\{", text), text


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), [
    ({"index.js": "exports.other = () => 1;"}, "index.handler", "Runtime.HandlerNotFound",
     "index.handler is undefined or not exported"),
    ({"index.js": "exports.handler = 42;"}, "index.handler", "Runtime.HandlerNotFound",
     "index.handler is not a function"),
    ({}, "missing.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'missing'"),
    ({"index.js": "exports.handler = () => {"}, "index.handler", "Runtime.UserCodeSyntaxError",
     "SyntaxError: Unexpected end of input"),
    ({"index.js": "exports.handler = () => 1;"}, "index", "Runtime.MalformedHandlerName",
     "Bad handler"),
    ({"index.js": "exports.handler = () => 1;"}, "../index.handler",
     "Runtime.MalformedHandlerName", "'../index.handler' is not a valid handler name. Use "
     "absolute paths when specifying root directories in handler names."),
    ({"index.js": "throw new Error('init boom');"}, "index.handler", "Error", "init boom"),
], ids=["not-exported", "not-a-function", "no-module", "syntax", "malformed", "relative",
        "module-throws"])
def test_init_errors_answer_the_invocation_and_init_is_retried(
        invoker: Invoker, node_function: Any, files: dict[str, str], handler: str,
        error_type: str, message: str) -> None:
    name = node_function(None, handler=handler, files=files)
    for attempt in (1, 2):  # each invocation retries Init in a new environment
        result = invoker.invoke(name, {}, log_type="Tail")
        assert result.function_error == "Unhandled"
        got = document(result)
        assert got["errorType"] == error_type
        assert got["errorMessage"].startswith(message), got
        text = tail_text(result)
        assert "\tundefined\tERROR\tUncaught Exception \t{" in text, text
        assert report_of(text)["init"] is not None
        assert invoker.meter(name)["cold_starts"] == attempt


def test_a_promise_never_settled_is_runtime_nodejs_exit(invoker: Invoker,
                                                        node_function: Any) -> None:
    name = node_function("exports.handler = async () => { await new Promise(() => {}); };")
    got = document(invoker.invoke(name, {}))
    assert got["errorType"] == "Runtime.NodeJsExit"
    assert got["errorMessage"].startswith("The Lambda runtime client detected an unexpected "
                                          "Node.js exit code.")


@pytest.mark.parametrize(("source", "error_type", "message"), [
    ("setTimeout(() => { throw new Error('late boom'); }, 1);", "Error", "late boom"),
    ("Promise.reject(new Error('rejected'));", "Runtime.UnhandledPromiseRejection",
     "Error: rejected"),
], ids=["uncaught-exception", "unhandled-rejection"])
def test_uncaught_errors_fail_the_invocation_and_the_runtime_starts_again(
        invoker: Invoker, node_function: Any, source: str, error_type: str,
        message: str) -> None:
    name = node_function(f"""
        let calls = 0;
        exports.handler = (event, context, callback) => {{
          calls += 1;
          if (event.fail) {{ {source} return; }}
          callback(null, calls);
        }};""")
    assert invoker.call(name, {}) == 1
    failed = invoker.invoke(name, {"fail": True})
    got = document(failed)
    assert (got["errorType"], got["errorMessage"]) == (error_type, message)
    # The runtime exited after reporting it (as Lambda's does): the next invocation runs
    # Init again in the same worker, with module state reset and an Init Duration.
    again = invoker.invoke(name, {}, log_type="Tail")
    assert document(again) == 1
    assert report_of(tail_text(again))["init"] is not None
    assert invoker.meter(name)["cold_starts"] == 2


# -- timeouts, crashes, memory ------------------------------------------------------------

def test_a_hanging_handler_times_out_and_the_pool_heals(invoker: Invoker,
                                                        node_function: Any) -> None:
    name = node_function("""
        exports.handler = async (event) => {
          if (event.hang) { setInterval(() => {}, 1000); return new Promise(() => {}); }
          return process.pid;
        };""", timeout_s=1)
    pid = invoker.call(name, {})
    result = invoker.invoke(name, {"hang": True}, log_type="Tail")
    got = document(result)
    assert got == {"errorType": "Sandbox.Timedout", "errorMessage":
                   f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds"}
    assert report_of(tail_text(result))["status"] == "timeout"
    wait_until(lambda: not alive(pid))  # the runtime died with its worker
    fresh = invoker.invoke(name, {}, log_type="Tail")
    assert document(fresh) != pid and report_of(tail_text(fresh))["init"] is not None
    assert invoker.meter(name)["timeouts"] == 1


@pytest.mark.parametrize(("source", "reason"), [
    ("process.exit(1);", "exit status 1"),
    ("process.exit(0);", None),
    ("process.kill(process.pid, 'SIGSEGV');", "signal: segmentation fault"),
    ("process.kill(process.pid, 'SIGKILL');", "signal: killed"),
], ids=["exit-1", "exit-0", "segfault", "sigkill"])
def test_a_runtime_that_ends_mid_invocation_is_runtime_exit_error(
        invoker: Invoker, node_function: Any, source: str, reason: str | None) -> None:
    name = node_function(f"""
        exports.handler = async (event) => {{
          if (event.crash) {{ console.log('about to end'); {source} }}
          return 'alive';
        }};""")
    assert invoker.call(name, {}) == "alive"
    result = invoker.invoke(name, {"crash": True}, log_type="Tail")
    text = "Runtime exited with error: " + reason if reason else \
        "Runtime exited without providing a reason"
    assert document(result) == {"errorType": "Runtime.ExitError",
                                "errorMessage": f"RequestId: {result.request_id} Error: {text}"}
    log = tail_text(result)
    assert "\tINFO\tabout to end" in log
    assert report_of(log)["status"] == "error"
    assert invoker.call(name, {}) == "alive"  # the pool healed


@pytest.mark.privileged
@pytest.mark.skipif(detect().name == "rlimit",
                    reason="no writable cgroup v1 or v2 here (run as root, or delegate a "
                           "cgroup v2 subtree): a runtime's memory is then not limited")
def test_out_of_memory_in_node_is_reported_as_lambda_does(make_invoker: Any,
                                                          tmp_path: Path) -> None:
    invoker = make_invoker(cpu_limits="off")  # Node.js start-up at 7 % of a CPU is slow
    code = write_code(tmp_path, {"index.js": """
        const kept = [];
        exports.handler = async (event) => {
          for (let i = 0; i < event.mb; i++) kept.push(Buffer.alloc(1 << 20, 1));
          return kept.length;
        };"""})
    invoker.create_function(FunctionConfig(name="hog", handler="index.handler", code=code,
                                           runtime=NODE_RUNTIME, memory_mb=128, timeout_s=30))
    assert invoker.call("hog", {"mb": 4}) == 4
    result = invoker.invoke("hog", {"mb": 400}, log_type="Tail")
    assert document(result)["errorMessage"].endswith(
        "Error: Runtime exited with error: signal: killed")
    report = report_of(tail_text(result))
    assert (report["status"], report["error_type"]) == ("error", "Runtime.OutOfMemory")
    assert int(report["max_used"]) >= 100
    assert invoker.meter("hog")["oom_kills"] == 1
    assert invoker.call("hog", {"mb": 4}) == 4  # a fresh worker


# -- meters and logs ----------------------------------------------------------------------

def test_report_lines_and_the_bill(make_invoker: Any, tmp_path: Path) -> None:
    invoker = make_invoker(billing="current")
    code = write_code(tmp_path, {"index.js": "exports.handler = async (e) => e.n;"})
    invoker.create_function(FunctionConfig(name="meter", handler="index.handler", code=code,
                                           runtime=NODE_RUNTIME, memory_mb=ONE_VCPU_MB))
    results = [invoker.invoke("meter", {"n": n}) for n in range(3)]
    reports = [report_of(log_of(invoker, "meter", r.request_id)) for r in results]
    assert [r["init"] is not None for r in reports] == [True, False, False]
    assert all(r["request_id"] == res.request_id for r, res in zip(reports, results,
                                                                    strict=True))
    assert all(r["memory"] == str(ONE_VCPU_MB) and int(r["max_used"]) > 0 for r in reports)
    meter = invoker.meter("meter")
    assert (meter["invocations"], meter["cold_starts"], meter["errors"]) == (3, 1, 0)
    # "current" billing: 1 ms units, Init billed on the cold start.
    assert meter["billed_ms"] == sum(int(r["billed"]) for r in reports)
    init_ms = float(reports[0]["init"])
    assert int(reports[0]["billed"]) >= init_ms + float(reports[0]["duration"])
    assert meter["mb_ms"] == ONE_VCPU_MB * meter["billed_ms"]


def test_warm_reuse_across_many_invocations_uses_one_runtime(
        invoker: Invoker, node_function: Any) -> None:
    name = node_function("""
        const started = Date.now(); let n = 0;
        exports.handler = (event, context, callback) => callback(null, [++n, started]);""")
    answers = [invoker.call(name, {}) for _ in range(20)]
    assert [a[0] for a in answers] == list(range(1, 21))
    assert len({a[1] for a in answers}) == 1
    assert invoker.meter(name)["cold_starts"] == 1


# -- configuration ------------------------------------------------------------------------

def test_runtimes_are_checked_when_a_function_is_created(tmp_path: Path) -> None:
    def config(runtime: str) -> FunctionConfig:
        return FunctionConfig(name="f", handler="index.handler", code=str(tmp_path),
                              runtime=runtime)

    with pytest.raises(InvalidParameterValueException, match=r"The runtime parameter of "
                       r"nodejs16\.x is not supported by this fastinvoke: use a Python runtime "
                       r".*nodejs18\.x, nodejs20\.x, nodejs22\.x or provided, provided\.al2, "
                       r"provided\.al2023\."):
        config("nodejs16.x").validate()
    other = next(r for r in NODE_RUNTIMES if r != NODE_RUNTIME)
    with pytest.warns(RuntimeWarning, match=rf"runtime {other} runs on this machine's Node.js"):
        config(other).validate()
    for runtime in (NODE_RUNTIME, "provided", "provided.al2", "provided.al2023"):
        config(runtime).validate()
