"""Sandboxed execution environments: what a function's processes may see and do.

The mechanism is in the core (``fastinvoke._core``: ``enter_environment``,
``fork_environment``, ``probe_environment``); this module is the policy around it:

- ``template_ops``: the new root of a function's template, as ``enter_environment`` builds
  it.  Read-only, at their own absolute paths: what this interpreter imports from (its
  prefixes, standard library, site-packages, the fastinvoke package), the system's
  ``/usr``, ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` and the few ``/etc`` files libc reads.
  Generated: ``/etc/passwd`` and ``/etc/group`` naming the sandbox user.  Lambda's layout:
  the code read-only at ``/var/task``, an empty ``/opt`` for layers, a tmpfs ``/tmp``, a
  ``/dev`` of six nodes, a ``/proc`` showing only the sandbox user's processes, and the
  empty mode-0 directory ``WORKER_STORE`` where each worker mounts its storage.  Nothing
  else: not ``/etc/shadow``, not ``/root``, not the server's state directory or keys, not
  another function's code (``check_sources`` refuses a source that would expose them).
- ``enter_template``: checks, then the template's environment: as root, another uid in a
  mount namespace; otherwise the server's uid in a user namespace owning mount and PID
  namespaces (bubblewrap's unprivileged mode), where the kernel allows it.
- ``probe_workers``: whether this kernel lets the (unprivileged) template give each worker
  its own user and mount namespace (``SandboxUnavailable`` says why not), and whether the
  worker's /tmp can be an overlay over the template's (``WorkerTmp`` says, with the
  warning to log when not).
- ``fork_environment``: a worker in its own namespaces, Lambda's quotas by default.  It
  stays in the template's PID namespace, as a Lambda runtime is an ordinary process.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .. import _core
from ..limits import MIN_EPHEMERAL_MB

__all__ = [
    "DEFAULT_EPHEMERAL_MB", "LAMBDA_NOFILE", "LAMBDA_NPROC", "SANDBOX_USER", "TASK_ROOT",
    "WORKER_STORE", "SandboxUnavailable", "WorkerTmp",
    "check_sources", "enter_template", "fork_environment", "interpreter_paths",
    "check_layout", "probe_workers", "template_ops",
]

Op = tuple  # one of enter_environment's op tuples

TASK_ROOT = "/var/task"
LAYERS_ROOT = "/opt"
# Where each worker mounts the private tmpfs behind its /tmp overlay (then detaches it).
WORKER_STORE = _core.WORKER_STORE
SANDBOX_USER = "sbx_user1051"  # the name Lambda's environments run as
# Lambda's quotas: "Ephemeral storage (/tmp)", "File descriptors", "Execution processes/threads"
DEFAULT_EPHEMERAL_MB = MIN_EPHEMERAL_MB
LAMBDA_NOFILE = 1024
LAMBDA_NPROC = 1024
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What libc, the resolver, TLS and time zones read; never shadow, sudoers or ssh keys.
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "hosts",
               "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf", "services", "protocols",
               "ssl", "pki", "ca-certificates", "ca-certificates.conf", "alternatives",
               "mime.types")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Never in a sandbox, whatever the interpreter's layout; the caller adds its state and keys.
ALWAYS_DENIED = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/root", "/home")
# Mounted over by the sandbox's own layout: what the host has there is not seen.
REPLACED = ("/tmp", "/proc", "/dev", TASK_ROOT, LAYERS_ROOT)


class WorkerTmp(NamedTuple):
    """What ``probe_workers`` found for a worker's /tmp: an overlay over the template's
    (Init's files seen, the worker's writes its own), or, when this kernel cannot mount one
    in a user namespace, an empty private tmpfs, with the one warning to log."""

    overlay: bool
    warning: str | None = None


class SandboxUnavailable(RuntimeError):
    """This machine cannot build (part of) the environment; ``reason`` says what and why,
    in words fit for the one warning the caller logs before it falls back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _outermost(paths: Iterable[str]) -> list[str]:
    """Existing paths, resolved, without those inside another (one bind covers them)."""
    resolved = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    kept: list[str] = []
    for path in resolved:  # sorted: a directory comes before what it holds
        if not any(_inside(path, outer) for outer in kept):
            kept.append(path)
    return kept


def interpreter_paths() -> list[str]:
    """What this interpreter loads code from, at the paths it knows them by: not every
    ``sys.path`` entry (``PYTHONPATH`` may name a whole checkout), only its prefixes,
    standard library, site-packages and the fastinvoke package."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        found = sysconfig.get_paths(vars=scheme_vars)
        paths += [found[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    paths += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        paths.append(site.getusersitepackages())
    return _outermost(paths)


def check_sources(sources: Iterable[str], denied: Iterable[str]) -> None:
    """Refuse to bind a source that is, or holds, a denied path (a subdirectory of a denied
    directory is fine: only it is bound, e.g. an interpreter under ``/root``)."""
    denied = [os.path.realpath(d) for d in denied]
    for source in sources:
        for path in denied:
            if _inside(path, os.path.realpath(source)):
                raise ValueError(f"sandbox: binding {source} would expose {path}")


def _account_files(uid: int, gid: int, user: str) -> list[Op]:
    passwd = (f"root:x:0:0:root:/root:/sbin/nologin\n"
              f"{user}:x:{uid}:{gid}::/tmp:/sbin/nologin\n"
              "nobody:x:65534:65534:nobody:/:/sbin/nologin\n")
    group = f"root:x:0:\n{user}:x:{gid}:\nnobody:x:65534:\n"
    return [("file", "/etc/passwd", passwd.encode(), 0o644),
            ("file", "/etc/group", group.encode(), 0o644)]


def check_layout(paths: Iterable[str] | None = None) -> None:
    """Raise SandboxUnavailable when what the sandbox must bind (default: this
    interpreter's paths) lies where each sandbox puts its own (/tmp, /proc, /dev, ...)."""
    for path in interpreter_paths() if paths is None else paths:
        for covered in REPLACED:
            if _inside(path, covered):
                raise SandboxUnavailable(
                    f"{path} is under {covered}, which each function's sandbox replaces with "
                    "its own, so functions run unsandboxed, as the server's user, seeing its "
                    f"files; install Python and fastinvoke outside {covered} to sandbox them")


def template_ops(code_dir: str, uid: int, gid: int, *, tmp_mb: int = DEFAULT_EPHEMERAL_MB,
                 user: str = SANDBOX_USER, extra: Sequence[str] = (),
                 denied: Sequence[str] = (), opt: str = "") -> list[Op]:
    """The template's new root, as ``enter_environment`` ops.  ``extra``: more host paths
    bound read-only at their own paths; ``denied``: paths no bind may expose (the state
    directory, the keys file), on top of ``ALWAYS_DENIED``; ``opt``: the directory of the
    function's layers, bound read-only at ``/opt`` (else an empty ``/opt``)."""
    ops: list[Op] = []
    binds: list[str] = list(extra)
    for path in SYSTEM_DIRS:
        if os.path.islink(path):  # merged /usr: /lib -> usr/lib
            ops.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            binds.append(path)
    binds = _outermost(binds + interpreter_paths())
    check_sources([*binds, code_dir, *([opt] if opt else [])], [*ALWAYS_DENIED, *denied])
    check_layout(binds)
    ops[:0] = [("ro-bind", path, path) for path in binds]  # symlinks may point into them
    ops.append(("dir", "/etc", 0o755))
    for name in ETC_ENTRIES:
        path = os.path.join("/etc", name)
        if os.path.exists(path):  # a link's target, bound at the link's path
            ops.append(("ro-bind", os.path.realpath(path), path))
    ops += _account_files(uid, gid, user)
    ops.append(("dir", "/dev", 0o755))
    ops += [("dev-bind", f"/dev/{name}", f"/dev/{name}") for name in DEVICES
            if os.path.exists(f"/dev/{name}")]
    ops += [("symlink", "/proc/self/fd", "/dev/fd")]
    ops += [("symlink", f"/proc/self/fd/{fd}", f"/dev/{name}")
            for fd, name in enumerate(("stdin", "stdout", "stderr"))]
    # hidepid=2: the template sees only its own user's processes, not the server's.
    ops.append(("proc", "/proc", "hidepid=2"))
    ops.append(("tmpfs", "/tmp", tmp_mb, 0o1777))
    ops.append(("ro-bind", os.path.realpath(code_dir), TASK_ROOT))
    ops.append(("ro-bind", os.path.realpath(opt), LAYERS_ROOT) if opt
               else ("dir", LAYERS_ROOT, 0o755))
    # Mode 0: nothing for the function there; a worker only mounts on it.
    ops.append(("dir", WORKER_STORE, 0))
    return ops


def enter_template(code_dir: str, uid: int, gid: int | None = None, *,
                   tmp_mb: int = DEFAULT_EPHEMERAL_MB, user: str = SANDBOX_USER,
                   extra: Sequence[str] = (), denied: Sequence[str] = (),
                   pdeathsig: int = 0, nproc: int = 0, opt: str = "") -> None:
    """Put this process (a function's template, still single-threaded, before Init) into
    its environment, cwd ``/var/task``.  ``nproc`` (> 0): RLIMIT_NPROC.

    As root: as ``uid``/``gid`` (``gid`` defaults to ``uid``), ``pdeathsig`` re-armed (the
    uid change clears it); ``nproc`` counts the function's whole uid, template and workers.
    Otherwise the unprivileged mode, where ``uid`` must be this process's own (it is kept,
    so files keep their owners; ``gid`` is this process's): a user namespace owning new
    mount and PID namespaces (``_core.enter_user_environment``).  This process then stays
    outside as a stub that never returns; its child, PID 1 of the new PID namespace, goes
    on here.  Only processes of the namespace are seen in /proc and signalled; as PID 1 it
    ignores signals from inside without a handler (pid_namespaces(7)): a worker cannot end
    it.  Pids it sees (its workers') are the namespace's, not the server's.

    Raises SandboxUnavailable when not root and the kernel refuses unprivileged user
    namespaces (nothing changed then), ValueError for a bad argument, OSError (the step,
    then exit) when the kernel refuses a later step."""
    unprivileged = os.geteuid() != 0
    if unprivileged and uid != os.getuid():
        raise ValueError("sandbox: without root, a template keeps the server's uid "
                         f"({os.getuid()}), not {uid}")
    gid = os.getgid() if unprivileged else uid if gid is None else gid
    if uid <= 0 or gid <= 0:
        raise ValueError("sandbox: the uid and gid must be unprivileged (not 0)")
    if tmp_mb <= 0:
        raise ValueError("sandbox: tmp_mb must be positive")
    if not os.path.isdir(code_dir):
        raise ValueError(f"sandbox: the code directory {code_dir} does not exist")
    ops = template_ops(code_dir, uid, gid, tmp_mb=tmp_mb, user=user, extra=extra,
                       denied=denied, opt=opt)
    if not unprivileged:
        _core.enter_environment(ops, uid, gid, TASK_ROOT, LAMBDA_NOFILE, nproc, pdeathsig)
        return
    try:
        _core.enter_user_environment(ops, TASK_ROOT, LAMBDA_NOFILE, nproc, pdeathsig)
    except OSError as error:
        if os.getpid() == 1 or not (error.strerror or "").startswith(
                "enter_user_environment: unshare("):
            raise  # past the unshare: half-changed, the template exits
        raise SandboxUnavailable(
            f"the server does not run as root and unprivileged user namespaces are refused "
            f"({_userns_refusal(error)}), so functions are not sandboxed: they run as uid "
            f"{uid} and can read what it can read (the state directory, keys, other "
            "functions' code and /tmp files), see and signal its processes") from None


def _sysctl(name: str) -> str | None:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return None


def _userns_refusal(error: OSError) -> str:
    """Why the kernel refused, from the knobs that refuse unprivileged user namespaces."""
    if _sysctl("user/max_user_namespaces") == "0":
        why = "user.max_user_namespaces is 0"
    elif _sysctl("kernel/unprivileged_userns_clone") == "0":
        why = "kernel.unprivileged_userns_clone is 0"
    elif _sysctl("kernel/apparmor_restrict_unprivileged_userns") == "1":
        why = ("AppArmor restricts unprivileged user namespaces "
               "(kernel.apparmor_restrict_unprivileged_userns is 1)")
    else:
        why = "the kernel refused"
    return f"{why}: {error}"


def _userns_reason(error: OSError) -> str:
    return (f"workers cannot have namespaces of their own ({_userns_refusal(error)}), so a "
            "function's workers share its template's /tmp: they see and change each other's "
            "and Init's files there, within one size for all, and RLIMIT_NPROC counts the "
            "function's processes together instead of each worker's")


def _overlay_reason(error: OSError) -> str:
    return (f"a worker's /tmp cannot be an overlay over its template's here ({error}; "
            "overlayfs in a user namespace needs Linux 5.11), so each worker gets an empty "
            "/tmp of its own: files Init wrote to /tmp are not there for the handler")


def probe_workers(tmp_mb: int = 1) -> WorkerTmp:
    """Raise SandboxUnavailable unless a worker environment can be made here; otherwise say
    which /tmp workers can have: pass its ``overlay`` to ``fork_environment`` and log its
    ``warning`` (if any) once.  Run it where the workers will be forked: in the template,
    after ``enter_template`` (before or after Init)."""
    try:
        _core.probe_environment(tmp_mb)
        return WorkerTmp(overlay=True)
    except OSError as overlay_error:
        try:  # the same environment with a plain tmpfs: if it works, the overlay was at fault
            _core.probe_environment(tmp_mb, tmp_overlay=False)
        except OSError as error:
            raise SandboxUnavailable(_userns_reason(error)) from None
        return WorkerTmp(overlay=False, warning=_overlay_reason(overlay_error))


def fork_environment(tmp_mb: int = DEFAULT_EPHEMERAL_MB, pdeathsig: int = 9,
                     cgroup_procs_fds: tuple[int, ...] = (), nproc: int = LAMBDA_NPROC, *,
                     tmp_overlay: bool = True) -> int:
    """``_core.fork_environment`` with Lambda's quotas: 0 in the child, its pid in the
    parent.  Fork from a single-threaded template (a raw clone skips glibc's fork handlers).
    ``tmp_overlay``: ``probe_workers().overlay``; with it the worker's /tmp holds what Init
    wrote there, and what the worker writes or changes (copied up) is its own, within
    ``tmp_mb`` MiB; without it /tmp starts empty.  With it, the template must leave its own
    /tmp alone from its first fork on: it is every worker's lower layer, which overlayfs
    does not expect to change under it.

    The child stays in the template's PID namespace: ``os.getpid()`` is the pid returned
    here (the one the server signals), ``os.getppid()`` the template's, and a signal it
    sends itself (``os.kill(os.getpid(), SIGKILL)``) acts as on Lambda, where PID 1 of a
    namespace of its own would ignore it (pid_namespaces(7)).  Its /proc is the template's,
    mounted with hidepid=2, which lists what a process may ptrace: the worker's own
    processes, not its template's or siblings' (another user namespace) nor the server's or
    another function's (another uid).  Signals go by uid, so it can still signal its
    template and siblings, whose pids it can guess.  Processes it starts and leaves behind
    outlive it (no namespace to end with it): the caller ends them, by their cgroup."""
    return _core.fork_environment(tmp_mb, pdeathsig, cgroup_procs_fds, nproc,
                                  tmp_overlay=tmp_overlay)
