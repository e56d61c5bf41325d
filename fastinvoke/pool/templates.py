"""Template processes: one per function, started from the supervisor thread, running Init
and forking workers on request.

A template reports on a pipe (Init's outcome, forks, its workers' exits) and takes Fork
requests on a SOCK_SEQPACKET control socket, with each new worker's link fds attached.
Closing the control socket tells it to kill its workers and exit.  A configuration change
retires the template: it keeps serving its workers until the last one is gone.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import zlib
from collections import deque
from collections.abc import Iterable, Sequence

import msgspec

from .. import wire
from .._core import monotonic_ns
from ..runtime.faults import exit_reason
from ..runtime.freeze import children
from ..runtime.sandbox import LAYERS_ROOT, TASK_ROOT
from .alarm import Alarm
from .environment import Environment, function_environment, renewal_due
from .failures import finish_init_failed
from .hop import Hop
from .layers import opt_root
from .records import FunctionPool

INIT_TIMEOUT_NS = 10_000_000_000  # Lambda's limit on the Init phase of on-demand functions
# Functions' uids: 2**24 of them from 0x5A000000, far above any system's users and below
# 2**31 (tools that take a uid for a signed 32-bit number).
_SANDBOX_UIDS = 0x5A000000
_SANDBOX_UID_COUNT = 1 << 24
_SHUTDOWN_GRACE_S = 5.0
_INIT_OUTPUT_LIMIT = 256 * 1024  # of Init's output, copied into each environment's stream

Message = msgspec.Struct


class Templates:
    """The template processes of every pool.  Reports are read by the supervisor thread
    through ``selector``, their keys' data being ``(pool, process)``."""

    def __init__(self, hop: Hop, alarm: Alarm, selector: selectors.BaseSelector,
                 state_dir: str, region: str, sandbox: bool,
                 denied: Sequence[str] = (), environment: Environment | None = None) -> None:
        """``environment`` gives a function's environment variables of the server's own
        (its role's credentials and when they expire, the server's endpoint)."""
        self._hop = hop
        self._alarm = alarm
        self._selector = selector
        self.state_dir = state_dir
        self.log_dir = os.path.join(state_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.region = region
        self.sandbox = sandbox
        # What no bind into a sandbox may expose: the state directory, and ``denied``
        # (another one's, for an Invoker's Ray node engine in the same process).
        self.denied = [state_dir, *denied]
        # Whether templates report the pids the server signals (see ``worker_pid``).
        self.same_pids = not sandbox or os.geteuid() == 0
        self._to_spawn: deque[tuple[FunctionPool, int]] = deque()  # with its generation
        self._environment = environment
        self._buffers: dict[int, bytes] = {}

    # -- asking for Init (lock held) ----------------------------------------------------------

    def boot(self, pool: FunctionPool) -> None:
        """Have the supervisor thread start ``pool``'s template (Init)."""
        pool.state = "booting"
        pool.init_deadline_ns = monotonic_ns() + INIT_TIMEOUT_NS
        self._to_spawn.append((pool, pool.generation))
        self._alarm.ring()

    def retire(self, pool: FunctionPool) -> None:
        """``pool``'s configuration changed: its template serves only the workers it has;
        a template still in Init is killed (it has none, and does not read its socket)."""
        if pool.control is not None:
            pool.retired[pool.generation] = pool.control
            pool.control = None
        template, pool.template = pool.template, None
        if pool.state == "booting" and template is not None:
            template.kill()
        pool.generation += 1

    def init_failed(self, pool: FunctionPool, error: dict) -> None:
        """Init failed: ``error`` answers every invocation waiting for it; the next one
        retries Init, as Lambda does."""
        pool.state = "failed"
        pool.init_error = error
        pool.inits += 1
        while pool.queue:
            finish_init_failed(self._hop, pool.queue.popleft())

    def expire_init(self, pools: Iterable[FunctionPool], now: int) -> None:
        """Kill templates whose Init ran past 10 s; their end reports the failure."""
        for pool in pools:
            if pool.state == "booting" and pool.template is not None \
                    and now >= pool.init_deadline_ns:
                pool.init_timed_out = True
                pool.template.kill()

    def close(self, pool: FunctionPool) -> None:
        """Close ``pool``'s control socket: its template kills its workers and exits."""
        if pool.control is not None:
            pool.control.close()
            pool.control = None

    def close_all(self, pool: FunctionPool) -> None:
        """``pool`` is gone: end its template and every retired one."""
        self.close(pool)
        for generation in list(pool.retired):
            pool.retired.pop(generation).close()

    def init_log(self, pool: FunctionPool) -> str:
        """Where the template's output goes (Init's, and workers' that die unready)."""
        return os.path.join(self.log_dir, f"{pool.name}.init.log")

    # -- starting (supervisor thread) ----------------------------------------------------------

    def spawn_pending(self) -> None:
        """Start the templates asked for (lock not held: a start takes milliseconds)."""
        while self._to_spawn:
            pool, generation = self._to_spawn.popleft()
            try:
                self._spawn(pool, generation)
            except OSError as exc:
                with self._hop.lock:
                    self._spawn_failed(pool, exc)

    def clear_pending(self) -> None:
        self._to_spawn.clear()

    def _spawn(self, pool: FunctionPool, generation: int) -> None:
        """Start ``pool``'s template process, unless its configuration was renewed since."""
        if generation != pool.generation:
            return
        config = pool.config
        code_dir = os.path.abspath(config.code)
        # Fork requests travel with the new worker's link fds: a socket, not a pipe.
        control, to_template = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        reports, from_template = os.pipe2(os.O_CLOEXEC)
        uid = -1
        if self.sandbox:  # without root, the unprivileged mode keeps the server's uid
            uid = sandbox_uid(self.state_dir, config.name) if os.geteuid() == 0 else os.getuid()
        opt = opt_root(self.state_dir, config.layers)
        boot = wire.Boot(config.name, config.handler, code_dir, to_template.fileno(),
                         from_template, os.getpid(), config.prefork, config.runtime,
                         uid, config.ephemeral_storage_mb, self.denied, opt, config.debug_port)
        task_root = TASK_ROOT if self.sandbox else code_dir
        init_log = self.init_log(pool)
        served, expires = self._environment(config) if self._environment else ({}, None)
        try:
            with open(init_log, "ab") as output:
                init_from = os.fstat(output.fileno()).st_size  # where this Init's output starts
                process = subprocess.Popen(
                    [sys.executable, "-m", "fastinvoke.runtime.template",
                     wire.encode_boot(boot).decode()],
                    cwd=code_dir, env=function_environment(
                        config, self.region, task_root,
                        (LAYERS_ROOT if self.sandbox else opt) if opt else "", served),
                    stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                    pass_fds=(to_template.fileno(), from_template), start_new_session=True,
                )
        except BaseException:
            control.close()
            os.close(reports)
            raise
        finally:
            to_template.close()
            os.close(from_template)
        with self._hop.lock:
            self._buffers[reports] = b""
            self._selector.register(reports, selectors.EVENT_READ, (pool, process))
            # Renewed or deleted while it started: it must not serve (a deleted pool's
            # control socket would never be closed).
            if generation != pool.generation or pool.deleted:
                control.close()
                process.kill()  # its end of the report pipe closes; that reaps it
                return
            pool.template = process
            pool.init_output_at = init_from
            pool.renew_at_ns = 0 if expires is None else renewal_due(expires)
            self.close(pool)  # a template whose Init failed: its end not yet read
            pool.control = control

    def _spawn_failed(self, pool: FunctionPool, exc: OSError) -> None:
        """The template could not even start (lock held): an Init failure for the
        invocations waiting; the next one tries again."""
        if pool.state == "booting":
            self.init_failed(pool, {
                "errorType": "Runtime.Unknown",
                "errorMessage": f"could not start the function's environment: {exc}; check "
                                f"its code directory {os.path.abspath(pool.config.code)}",
            })

    # -- reading reports (supervisor thread, lock held) ---------------------------------------

    def read(self, fd: int, pool: FunctionPool,
             process: subprocess.Popen[bytes]) -> list[Message] | None:
        """What the template reported; None once its pipe closed (see ``ended``)."""
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        *lines, self._buffers[fd] = (self._buffers[fd] + chunk).split(b"\n")
        messages = []
        for line in lines:
            message = wire.decode_from_template(line)
            if process is not pool.template and type(message) in (wire.Ready, wire.InitFailed):
                continue  # the Init of a template replaced by ``renew``
            messages.append(message)
        return messages

    def ready(self, pool: FunctionPool, message: wire.Ready) -> None:
        pool.state = "ready"
        pool.init_ns = message.init_ns
        pool.init_error = None
        pool.inits += 1
        # What Init printed: each new environment's log stream begins with it, as on
        # Lambda, where every environment runs Init (here the template ran it once).
        try:
            with open(self.init_log(pool), "rb") as output:
                output.seek(pool.init_output_at)
                pool.init_output = output.read(_INIT_OUTPUT_LIMIT)
        except OSError:
            pool.init_output = b""

    def worker_pid(self, process: subprocess.Popen[bytes], pid: int) -> int | None:
        """The pid the server signals for the worker ``process`` (a template) reported as
        ``pid``: the same as root or unsandboxed; in the unprivileged mode the template is
        PID 1 of a PID namespace of its own (pid_namespaces(7)) and reports the pids of that
        namespace, so the worker is looked up among the children of the template (the child
        of ``process``, the stub left outside) by the last field of its NSpid line.  Only a
        child of the function's own template can be found, whatever it reports.  None: it
        has already ended (its Exited report follows)."""
        if self.same_pids:
            return pid
        for parent in (process.pid, *children(process.pid)):  # unconfined, or the stub
            for child in reversed(children(parent)):  # the newest last
                if _nspid(child) == pid:
                    return child
        return None

    def ended(self, fd: int, pool: FunctionPool, process: subprocess.Popen[bytes]) -> bool:
        """The template's report pipe closed: it has exited.  True when it was ``pool``'s
        current template: then Init failed if it was running, and otherwise the pool is
        "dead" and its workers died with it (the caller ends them)."""
        self._selector.unregister(fd)
        os.close(fd)
        del self._buffers[fd]
        status = process.wait()
        if process is not pool.template:
            return False  # an earlier template (its Init failed); a newer one is running
        self.close(pool)
        if pool.state == "booting":  # it ended before Init finished: an Init failure
            reason = exit_reason(-1, -status) if status < 0 else exit_reason(status, 0)
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId:  Error: {reason} (its output is in "
                                f"{self.init_log(pool)})",
            }
            if pool.init_timed_out:
                pool.init_timed_out = False
                error = {"errorType": "Sandbox.Timedout",
                         "errorMessage": "Init timed out after 10.00 seconds"}
            self.init_failed(pool, error)
        elif pool.state != "failed":
            pool.state = "dead"
        return True

    def end_retired(self, pool: FunctionPool) -> None:
        """Close the sockets of retired templates whose last worker is gone: they exit."""
        live = {record.generation for record in pool.workers.values()}
        for generation in [g for g in pool.retired if g not in live]:
            pool.retired.pop(generation).close()

    def shut_down(self) -> None:
        """Wait for every template to exit (their sockets are closed); one still in Init
        does not read its socket, so after a grace period it is killed."""
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, tuple):
                os.close(key.fd)
                _end(key.data[1])


def sandbox_uid(state_dir: str, function: str) -> int:
    """The unprivileged uid a function's processes run as: its own, so that no function
    can see, signal or read another's (hidepid /proc, file modes), stable across runs of
    one state directory, in a range no distribution gives to users."""
    key = f"{os.path.realpath(state_dir)}\0{function}".encode()
    return _SANDBOX_UIDS + zlib.crc32(key) % _SANDBOX_UID_COUNT


def _nspid(pid: int) -> int | None:
    """``pid``'s pid in its own PID namespace (the last field of NSpid, Linux 4.1)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return None


def _end(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(_SHUTDOWN_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
