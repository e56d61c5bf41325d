"""The template process of one function: Init once, then fork warm workers on request.

Started by the front-end as ``python -m fastinvoke.runtime.template BOOT`` in the code
directory with the function's environment.  It imports the handler (the Init phase; its
duration is what every worker's first REPORT shows), reports Ready or InitFailed, then
serves Fork requests from the control pipe and reports every child that ends (``wait4``
status and rusage) until the pipe closes or Shutdown arrives; then it kills its workers.

For a runtime other than Python (Node.js, a custom ``bootstrap``), Init only finds the
runtime's command (``launch``); each worker is then a bridge (``bridge``) that starts the
runtime and serves it Lambda's Runtime API, and the runtime's own Init runs there.

Each Fork request arrives on the control socket with the new worker's link (its two
shared-memory lanes, two eventfds and the front-end's doorbell, made by the front-end),
its output pipe and its cgroup files, opened by the front-end; the child keeps them, the
template closes its copies.  It dies with the front-end (parent-death
signal) and its workers die with it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import resource
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable

from .. import wire
from .._core import Link, fork_worker, monotonic_ns, reap, set_parent_death_signal
from .faults import Fault, error_document
from .handler import resolve
from .launch import drop_template_variables, runtime_family
from .worker import prepare as prepare_worker
from .worker import run as run_worker

_RLIMIT_SLACK_MB = 64  # the worker's link mappings and the allocator's arenas
# request lane, reply lane, the worker's eventfd, the front-end's eventfd and doorbell
_LINK_FDS = 5
# the link's, the output pipe, a peak-memory file, a cgroup.procs file per v1 hierarchy
_MAX_FORK_FDS = _LINK_FDS + 2 + 4


class Template:
    """Invariant: ``workers`` maps the pid of every live child to its worker id.
    ``fork_process`` forks a worker: into an environment of its own when sandboxed."""

    def __init__(self, boot: wire.Boot, fork_process: Callable[..., int] = fork_worker) -> None:
        self.boot = boot
        self.fork_process = fork_process
        self.workers: dict[int, str] = {}
        self.handler: object = None
        self.init_ns = 0
        self.out = boot.control_out
        self.family = runtime_family(boot.runtime) if boot.runtime else "python"
        self.run_bridge: Callable[..., None] | None = None

    def send(self, message: object) -> None:
        os.write(self.out, wire.encode_line(message))

    def init(self) -> bool:
        """Run Init; report the outcome.  Returns False when Init failed."""
        if self.family != "python":
            return self.init_runtime()
        if not self.boot.prefork:
            self.send(wire.Ready(0))
            return True
        started = monotonic_ns()
        try:
            self.handler = resolve(self.boot.handler)
        except Exception as exc:
            self.init_ns = monotonic_ns() - started
            document = error_document(exc, "")
            traceback.print_exc()
            self.send(wire.InitFailed(document, self.init_ns))
            return False
        self.init_ns = monotonic_ns() - started
        self.send(wire.Ready(self.init_ns))
        return True

    def init_runtime(self) -> bool:
        """Init of a runtime other than Python: find its command; import the bridge here,
        once, rather than in every worker."""
        from .bridge import run
        from .launch import runtime_command

        try:
            self.handler = runtime_command(self.family, self.boot.code, self.boot.debug_port)
        except Fault as exc:
            print(f"{exc.error_type}: {exc.message}", flush=True)
            self.send(wire.InitFailed({"errorType": exc.error_type,
                                       "errorMessage": exc.message}, 0))
            return False
        self.run_bridge = run
        self.send(wire.Ready(0))
        return True

    def serve(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        selector = selectors.DefaultSelector()
        selector.register(self.boot.control_in, selectors.EVENT_READ, "control")
        selector.register(wake_r, selectors.EVENT_READ, "signal")
        control = socket.socket(fileno=self.boot.control_in)
        while True:
            for key, _ in selector.select():
                if key.data == "signal":
                    while _drain(wake_r):
                        pass
                    self.report_exits()
                    continue
                line, fds, _, _ = socket.recv_fds(control, 65536, _MAX_FORK_FDS,
                                                  socket.MSG_CMSG_CLOEXEC)
                if not line:
                    return
                message = wire.decode_to_template(line.rstrip(b"\n"))
                if type(message) is wire.Shutdown:
                    return
                self.fork(message, fds, (wake_r, wake_w))

    def fork(self, request: wire.Fork, fds: list[int], private_fds: tuple[int, int]) -> None:
        expected = _LINK_FDS + 1 + request.peak + request.groups
        groups = tuple(fds[expected - request.groups:expected])
        try:
            if len(fds) != expected:
                raise OSError(f"the fork request came with {len(fds)} of its {expected} fds")
            pid = self.fork_process(signal.SIGKILL, groups)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            self.send(wire.ForkFailed(request.worker, str(exc)))
            return
        for fd in groups:  # parent and child alike: once forked, the child has joined them
            os.close(fd)
        if pid == 0:
            self.become_worker(request, fds[:expected - request.groups], private_fds)
        for fd in fds[:expected - request.groups]:
            os.close(fd)
        self.workers[pid] = request.worker
        self.send(wire.Forked(request.worker, pid))

    def become_worker(self, request: wire.Fork, fds: list[int],
                      private_fds: tuple[int, int]) -> None:
        """In the child: drop the template's fds and signal handling, run the worker.
        ``fds``: the link's, the output pipe and the peak-memory file if any."""
        status = 0
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (self.boot.control_in, self.boot.control_out, *private_fds):
                os.close(fd)
            # Not for a bridge: V8 and other runtimes reserve more address space than they use.
            if request.rlimit_mb and self.run_bridge is None:
                _limit_address_space(request.rlimit_mb)
            if request.provisioned:
                os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "provisioned-concurrency"
            requests, replies, wake, notify, bell, output = fds[:_LINK_FDS + 1]
            peak = fds[_LINK_FDS + 1] if request.peak else -1
            link = Link(requests, replies, wake, notify, max_spin_ns=request.max_spin_ns,
                        bell_fd=bell)
            if self.run_bridge is not None:
                self.run_bridge(link, output, self.handler, peak, request.log_stream,
                                self.boot.code)
                return
            handler, init_ns = self.handler, self.init_ns
            if self.boot.debug_port:
                _wait_for_debugger(self.boot.debug_port)
            if not self.boot.prefork:
                handler, init_ns = _init_in_worker(self.boot.handler)
            run_worker(link, output, handler, init_ns, peak, request.log_stream)
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            os._exit(status)

    def report_exits(self) -> None:
        for pid, exit_status, signum, max_rss_kb, user_us, system_us in reap():
            if self.workers.pop(pid, None) is not None:
                self.send(wire.Exited(pid, exit_status, signum, max_rss_kb, user_us, system_us))

    def stop(self) -> None:
        """Kill every worker and wait for each, so none outlives the template."""
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.workers:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _wait_for_debugger(port: int) -> None:
    """Listen for debugpy on 127.0.0.1:``port`` and wait until a client attaches: before
    the worker says it is ready, so no invocation's timeout runs meanwhile."""
    try:
        import debugpy
    except ImportError:
        print("fastinvoke: debugging a Python function needs debugpy where fastinvoke runs: "
              "pip install debugpy", flush=True)
        raise
    debugpy.listen(("127.0.0.1", port))
    print(f"fastinvoke: waiting for a debugger to attach on 127.0.0.1:{port}", flush=True)
    debugpy.wait_for_client()


def _init_in_worker(handler: str) -> tuple[object, int]:
    started = monotonic_ns()
    try:
        function: object = resolve(handler)
    except Exception as exc:
        function = exc
    return function, monotonic_ns() - started


def _limit_address_space(memory_mb: int) -> None:
    """RLIMIT_AS where no cgroup is writable: what the fork already maps (interpreter,
    template, thread stacks to come) plus the memory size, so the function gets about
    its memory size to allocate.  Virtual, not resident, memory: an approximation."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + ((memory_mb + _RLIMIT_SLACK_MB) << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 4096))
    except BlockingIOError:
        return False


def _confine(boot: wire.Boot) -> Callable[..., int]:
    """Enter the function's sandbox (before Init, while single-threaded); return how to
    fork its workers.  What this machine cannot give is reported (``Unconfined``) for the
    front-end's one warning, never dropped silently; a kernel that refuses a step the
    sandbox needs ends the template (the front-end reports it as an Init failure).
    Without root this process becomes the stub outside the function's PID namespace and
    its child, PID 1 there, returns (``sandbox.enter_template``)."""
    from . import sandbox

    try:
        sandbox.enter_template(boot.code, boot.sandbox_uid, tmp_mb=boot.tmp_mb,
                               denied=boot.denied, pdeathsig=signal.SIGKILL, opt=boot.opt)
    except sandbox.SandboxUnavailable as exc:  # no user namespaces, or a layout it cannot
        for name in ("LAMBDA_TASK_ROOT", "NODE_PATH"):  # hold: unsandboxed
            if name in os.environ:
                os.environ[name] = _on_host(os.environ[name], boot)
        os.write(boot.control_out, wire.encode_line(wire.Unconfined(exc.reason)))
        return fork_worker
    boot.code = os.environ["LAMBDA_TASK_ROOT"] = sandbox.TASK_ROOT
    boot.opt = sandbox.LAYERS_ROOT if boot.opt else ""
    try:
        tmp = sandbox.probe_workers()
    except sandbox.SandboxUnavailable as exc:
        os.write(boot.control_out, wire.encode_line(wire.Unconfined(exc.reason)))
        return fork_worker
    if tmp.warning:
        os.write(boot.control_out, wire.encode_line(wire.Unconfined(tmp.warning)))
    fork = functools.partial(sandbox.fork_environment, boot.tmp_mb, tmp_overlay=tmp.overlay)
    if os.getpid() != 1:
        return fork
    # PID 1 ignores a signal from inside its namespace only without a handler
    # (pid_namespaces(7)): not the interpreter's SIGINT one, which workers get back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    def fork_in_namespace(*args: object) -> int:
        pid = fork(*args)
        if pid == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return pid

    return fork_in_namespace


def _on_host(paths: str, boot: wire.Boot) -> str:
    """``paths`` (``:``-separated) with the sandbox's /var/task and /opt as the host's."""
    from .sandbox import LAYERS_ROOT, TASK_ROOT

    def host(path: str) -> str:
        for inside, outside in ((TASK_ROOT, boot.code), (LAYERS_ROOT, boot.opt)):
            if path == inside or path.startswith(inside + "/"):
                return outside + path[len(inside):]
        return path

    return ":".join(map(host, paths.split(":")))


def main() -> None:
    boot = wire.decode_boot(sys.argv[1])
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != boot.parent:  # the front-end died before the signal was armed
        sys.exit(1)
    fork_process = _confine(boot) if boot.sandbox_uid >= 0 else fork_worker
    sys.path.insert(0, boot.code)
    if boot.opt:  # where Lambda's Python finds a layer's packages, after the code's
        minor = sys.version_info.minor
        sys.path[1:1] = [f"{boot.opt}/python/lib/python3.{minor}/site-packages",
                         f"{boot.opt}/python"]
    prepare_worker()
    template = Template(boot, fork_process)
    if template.family == "python":  # this process is the runtime: Lambda's variables only
        drop_template_variables(os.environ)
        os.environ.setdefault("PYTHONPATH", os.environ["LAMBDA_RUNTIME_DIR"])
    if not template.init():
        sys.exit(0)
    # Everything Init made is now shared with every worker copy-on-write: keep the
    # collector from walking (and so copying) those pages in each child.
    gc.freeze()
    try:
        template.serve()
    finally:
        template.stop()


if __name__ == "__main__":
    main()
