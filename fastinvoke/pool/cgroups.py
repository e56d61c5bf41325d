"""Per-worker memory and CPU limits with Linux control groups: cgroup v2, v1, or rlimits.

``detect()`` picks a backend.  ``Backend.instance(tag)`` makes the run's parent group
``fastinvoke-<tag>`` in each hierarchy (tag: the front-end's pid, optionally ``.suffix``) after
removing those of earlier runs whose front-end is dead.  ``Instance.group()`` makes a leaf group
per worker and writes its limits; parent groups never hold a process.  A forked worker joins by
writing ``b"0"`` ("myself") to each fd of ``Group.procs_fds()`` before it runs any Python code,
so all it allocates afterwards is charged to its group.  Stdlib only.

- v2 (Documentation/admin-guide/cgroup-v2.rst): one tree.  A non-root group can enable the
  memory and cpu controllers for its children only while it holds no process ("No Internal
  Process Constraint"), so workers live in leaves under the run group.  If our own group holds
  processes and is ours to manage (a container's root; a group systemd delegated, e.g. by
  ``systemd-run -p Delegate=yes``), they first move into the leaf ``fastinvoke-front``.
- v1 (Documentation/admin-guide/cgroup-v1/memory.rst): one tree per controller.  Groups go
  under our own group of the memory and cpu hierarchies, and of cpuacct's (for CPU time) when
  it is mounted on its own.
- rlimit: no writable cgroups.  RLIMIT_AS stands in for the memory limit; exact peak memory,
  OOM detection and the CPU share are lost, which is logged once.

A page stays charged to the group that first touched it ("Memory Ownership" in cgroup-v2.rst;
v1 moves charges only with the deprecated memory.move_charge_at_immigrate).  Pages a worker
still shares copy-on-write with its template thus count in the template's group, not its own.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import resource
import signal
import time
from contextlib import suppress
from pathlib import Path

__all__ = ["Backend", "CgroupError", "Group", "Instance", "RlimitBackend", "cpu_share", "detect"]

log = logging.getLogger("fastinvoke")

MB_PER_VCPU = 1769  # Lambda: one full vCPU at 1,769 MB
MAX_VCPUS = 6
CFS_PERIOD_US = 100_000
MIN_QUOTA_US = 1000  # the kernel refuses smaller CFS quotas
CPU_MODES = ("proportional", "weighted", "off")
FRONT_LEAF = "fastinvoke-front"
_RUN_GROUP = re.compile(r"fastinvoke-(\d+)(?:\.[\w-]+)?")  # fastinvoke-<pid>[.suffix]
_WORKER_ID = re.compile(r"[\w-]+")  # no dots, so no clash with interface files
Mount = tuple[str, Path, str, set[str]]  # fstype, mount point, root in the hierarchy, options
_warned = False


class CgroupError(RuntimeError):
    """A cgroup operation failed; the message says what to do next."""


def cpu_share(memory_mb: int, host_cpus: int) -> float:
    """vCPUs for ``memory_mb``: 1 per 1,769 MB, at most ``host_cpus`` and 6."""
    return min(memory_mb / MB_PER_VCPU, float(host_cpus), float(MAX_VCPUS))


def _write(path: Path, value: str, *, optional: bool = False) -> None:
    """One write(2) (cgroupfs parses each write whole); ``optional``: skip a missing file."""
    if not optional or path.exists():
        with open(path, "wb", buffering=0) as f:  # unbuffered: errors surface here
            f.write(value.encode())


def _keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file ("key value" lines): memory.events, cpu.stat, memory.oom_control."""
    pairs = (line.split() for line in path.read_text().splitlines())
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2}


def _pids(group: Path) -> list[int]:
    return [int(p) for p in (group / "cgroup.procs").read_text().split()]


def _rmdir(group: Path, timeout: float = 2.0) -> None:
    """rmdir a leaf group.  rmdir fails with EBUSY while the group has live processes, so
    SIGKILL those still listed and retry while the kernel finishes their exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(group)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            pids = _pids(group)
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {group}: {e.strerror} (processes: "
                                  f"{pids}); kill them, then `rmdir {group}`") from e
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


def _rmtree(group: Path) -> None:  # children first
    for entry in list(os.scandir(group)) if group.is_dir() else []:
        if entry.is_dir(follow_symlinks=False):
            _rmtree(Path(entry.path))
    _rmdir(group)


def _remove_stale(base: Path) -> None:
    """Remove the run groups under ``base`` whose front-end (the tag's pid) is dead."""
    for entry in list(os.scandir(base)) if base.is_dir() else []:
        match = _RUN_GROUP.fullmatch(entry.name)  # /proc/<pid> is there while the pid lives
        if match and entry.is_dir() and not os.path.exists(f"/proc/{match[1]}"):
            try:
                _rmtree(Path(entry.path))
                log.info("removed cgroup %s left by an earlier run", entry.path)
            except CgroupError as e:
                log.warning("%s", e)


class Group:
    """One worker's group, its limits written: ``dirs`` has one directory per hierarchy (v2:
    one; v1: memory, cpu, then cpuacct if it is a hierarchy of its own; rlimit: none)."""

    def __init__(self, kind: str, dirs: list[Path], memory_mb: int) -> None:
        self.kind, self.dirs, self.memory_mb = kind, dirs, memory_mb
        self.removed, self._peak = False, 0
        self._fds: list[int] | None = None

    def procs_fds(self) -> list[int]:
        """Write-only fds of the ``cgroup.procs`` files (none under rlimit); a child joins with
        ``os.write(fd, b"0")`` on each.  Opened once, close-on-exec, closed by ``remove()``."""
        if self._fds is None:
            self._fds = [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                         for d in self.dirs]
        return list(self._fds)

    def preexec_limits(self) -> None:
        """Call in the child after joining; only rlimit sets anything: RLIMIT_AS = the memory
        size.  That caps virtual memory (mappings, stacks, reserved arenas), not resident
        memory, so it is an approximation; past it, allocations raise MemoryError."""
        if self.kind == "rlimit":
            resource.setrlimit(resource.RLIMIT_AS, (self.memory_mb << 20,) * 2)

    def memory_peak_bytes(self) -> int:
        """Peak memory charged to the group; 0 under rlimit (use ru_maxrss from os.wait4)."""
        if self.kind == "v1":
            return int((self.dirs[0] / "memory.max_usage_in_bytes").read_text())
        if self.kind == "v2":
            # memory.peak exists since Linux 5.19; before it, keep the largest memory.current
            # seen (a spike between two calls is missed).
            if (self.dirs[0] / "memory.peak").exists():
                return int((self.dirs[0] / "memory.peak").read_text())
            self._peak = max(self._peak, int((self.dirs[0] / "memory.current").read_text()))
            return self._peak
        return 0

    def oom_killed(self, *, sigkilled: bool = True) -> bool:
        """Whether the kernel OOM-killed a process of the group (never known under rlimit).
        v2: memory.events ``oom_kill``; v1: memory.oom_control ``oom_kill`` (Linux 4.13+), or
        on older kernels memory.failcnt > 0 (usage hit the limit, maybe resolved by reclaim)
        and ``sigkilled``, which the caller sets to whether the worker died by SIGKILL."""
        if self.kind == "v2":
            return _keyed(self.dirs[0] / "memory.events").get("oom_kill", 0) > 0
        if self.kind == "v1":
            counts = _keyed(self.dirs[0] / "memory.oom_control")
            if "oom_kill" in counts:
                return counts["oom_kill"] > 0
            return sigkilled and int((self.dirs[0] / "memory.failcnt").read_text()) > 0
        return False

    def cpu_usage_ns(self) -> int:
        """CPU time used by the group; 0 if not measurable (rlimit, v1 without cpuacct)."""
        if self.kind == "v2":
            return _keyed(self.dirs[0] / "cpu.stat").get("usage_usec", 0) * 1000
        if self.kind == "v1":  # cpuacct.usage (ns) is in the cpu group if co-mounted with cpu
            usage = self.dirs[-1] / "cpuacct.usage"
            return int(usage.read_text()) if usage.exists() else 0
        return 0

    def remove(self) -> None:
        """Kill what is left in the group and remove it (idempotent).  Read counters first."""
        fds, self._fds = self._fds or [], None
        for fd in fds:
            os.close(fd)
        for d in self.dirs:
            _rmdir(d)
        self.removed = True


class Instance:
    """One run: the parent groups (``fastinvoke-<tag>`` per hierarchy) and its workers."""

    def __init__(self, backend: Backend, parents: list[Path]) -> None:
        self.backend, self.parents = backend, parents
        self._groups: list[Group] = []

    def group(self, worker_id: str, memory_mb: int, cpu_mode: str, host_cpus: int,
              limit_memory: bool = True) -> Group:
        """Make worker ``worker_id``'s group: ``memory_mb`` MiB (unless not
        ``limit_memory``: then only measured), CPU as ``cpu_mode`` says."""
        if not _WORKER_ID.fullmatch(worker_id):
            raise ValueError(f"worker id {worker_id!r}: use letters, digits, '_' and '-'")
        if cpu_mode not in CPU_MODES:
            raise ValueError(f"cpu_mode {cpu_mode!r}: use one of {', '.join(CPU_MODES)}")
        created: list[Path] = []
        try:
            for parent in self.parents:
                (parent / worker_id).mkdir()
                created.append(parent / worker_id)
            vcpus = cpu_share(memory_mb, host_cpus)
            _limit(self.backend.name, created, memory_mb if limit_memory else 0, cpu_mode, vcpus)
        except OSError as e:
            for d in created:
                _rmdir(d)
            if isinstance(e, FileExistsError):
                raise CgroupError(f"worker group {e.filename} exists: give each worker of an "
                                  "instance its own id") from e
            raise CgroupError(f"cannot create or limit {e.filename}: {e.strerror}") from e
        group = Group(self.backend.name, created, memory_mb)
        self._groups = [g for g in self._groups if not g.removed] + [group]
        return group

    def remove(self) -> None:
        """Remove the worker groups, then the parents if no other instance uses them."""
        groups, self._groups = self._groups, []
        for group in groups:
            group.remove()
        for parent in self.parents:
            if parent.is_dir() and not any(e.is_dir() for e in os.scandir(parent)):
                _rmdir(parent)


def _limit(kind: str, dirs: list[Path], memory_mb: int, cpu_mode: str, vcpus: float) -> None:
    """Write the limits (``memory_mb`` 0: no memory limit, only accounting)."""
    limit, quota = str(memory_mb << 20), max(MIN_QUOTA_US, round(vcpus * CFS_PERIOD_US))
    if kind == "v2":
        (d,) = dirs
        if memory_mb:
            _write(d / "memory.max", limit)
            _write(d / "memory.swap.max", "0", optional=True)  # no escape into swap
        _write(d / "memory.oom.group", "1", optional=True)  # OOM ends the whole worker
        if cpu_mode == "proportional":
            _write(d / "cpu.max", f"{quota} {CFS_PERIOD_US}")
        elif cpu_mode == "weighted":
            _write(d / "cpu.weight", str(max(1, min(10000, round(100 * vcpus)))))
    elif kind == "v1":
        memory, cpu = dirs[0], dirs[1]
        # memory.rst: memsw.limit_in_bytes (memory + swap) may not go below limit_in_bytes, so
        # it comes second; it exists only with swap accounting, and closes the swap escape.
        if memory_mb:
            _write(memory / "memory.limit_in_bytes", limit)
            _write(memory / "memory.memsw.limit_in_bytes", limit, optional=True)
        if cpu_mode == "proportional":
            _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(quota))
        elif cpu_mode == "weighted":
            _write(cpu / "cpu.shares", str(max(2, round(1024 * vcpus))))


class Backend:
    """How workers are limited: ``name`` is "v2", "v1" or "rlimit"; ``bases`` are where the
    run groups go (v2: one directory; v1: memory, cpu, then cpuacct if separate)."""

    def __init__(self, name: str, bases: list[Path]) -> None:
        self.name, self.bases = name, [Path(b) for b in bases]

    def instance(self, tag: str) -> Instance:
        """Remove stale ``fastinvoke-*`` groups, then make (or reuse) ``fastinvoke-<tag>``."""
        name = f"fastinvoke-{tag}"
        if not _RUN_GROUP.fullmatch(name):
            raise ValueError(f"tag {tag!r}: use the front-end's pid, optionally '.suffix'")
        for base in self.bases:
            _remove_stale(base)
        parents = [base / name for base in self.bases]
        try:
            for parent in parents:
                parent.mkdir(exist_ok=True)
            if self.name == "v2":  # the run group holds no process: it may pass them down
                _write(parents[0] / "cgroup.subtree_control", "+memory +cpu")
        except OSError as e:
            raise CgroupError(f"cannot create run group {e.filename}: {e.strerror}; run as root "
                              "or delegate a cgroup subtree to this user") from e
        return Instance(self, parents)


class RlimitBackend(Backend):
    """No writable cgroups: groups only carry ``preexec_limits()`` (RLIMIT_AS)."""

    def __init__(self) -> None:
        super().__init__("rlimit", [])


def _mounts(mountinfo: str) -> list[Mount]:
    found = []
    for line in Path(mountinfo).read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, (fstype, _source, options) = left.split(), right.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            found.append((fstype, Path(point), fields[3], set(options.split(","))))
    return found


def _own(proc_cgroup: str) -> dict[str, str]:
    """Our group per controller, from /proc/self/cgroup; key "" is the v2 tree."""
    lines = (line.split(":", 2) for line in Path(proc_cgroup).read_text().splitlines())
    return {c: path for _hierarchy, controllers, path in lines for c in controllers.split(",")}


def _under(point: Path, root: str, path: str) -> Path | None:  # mount shows subtree root
    root = root.rstrip("/")
    if root and not (path + "/").startswith(root + "/"):
        return None
    return point / path[len(root):].lstrip("/")


def _probe(base: Path) -> None:
    probe = base / f"fastinvoke-{os.getpid()}.probe"  # named so a crash leaves it stale
    probe.mkdir(exist_ok=True)
    os.rmdir(probe)


def _delegated(group: Path) -> bool:  # systemd 251+ sets this xattr on Delegate=yes groups
    for name in ("trusted.delegate", "user.delegate"):
        with suppress(OSError):
            return os.getxattr(group, name) == b"1"
    return False


def _v2(mounts: list[Mount], own: dict[str, str]) -> Backend | None:
    for fstype, point, root, _options in mounts:
        base = _under(point, root, own[""]) if fstype == "cgroup2" and "" in own else None
        if base is None or not {"memory", "cpu"} <= set(
                (base / "cgroup.controllers").read_text().split()):
            continue  # e.g. a hybrid system, where v1 hierarchies hold these controllers
        if base.name == FRONT_LEAF:  # we moved ourselves here before
            base = base.parent
        control = base / "cgroup.subtree_control"
        if not {"memory", "cpu"} <= set(control.read_text().split()):
            try:
                _write(control, "+memory +cpu")
            except OSError as e:
                if e.errno != errno.EBUSY or not (own[""] == "/" or _delegated(base)):
                    raise  # a group we may not rearrange (e.g. a login session's scope)
                # "No Internal Process Constraint": first move this group's processes out
                leaf = base / FRONT_LEAF
                leaf.mkdir(exist_ok=True)
                for pid in _pids(base):
                    with suppress(ProcessLookupError):
                        _write(leaf / "cgroup.procs", str(pid))
                log.info("moved the processes of cgroup %s into %s", base, leaf)
                _write(control, "+memory +cpu")
        _probe(base)
        return Backend("v2", [base])
    return None


def _v1(mounts: list[Mount], own: dict[str, str]) -> Backend | None:
    bases: dict[str, Path] = {}
    for fstype, point, root, options in mounts:
        for controller in ("memory", "cpu", "cpuacct"):
            if fstype == "cgroup" and controller in options and controller in own:
                base = _under(point, root, own[controller])
                if base is not None:
                    bases.setdefault(controller, base)
    if "memory" not in bases or "cpu" not in bases:
        return None
    found = [bases["memory"], bases["cpu"]]
    for base in found:
        _probe(base)
    if "cpuacct" in bases and bases["cpuacct"] != bases["cpu"]:  # not co-mounted with cpu
        with suppress(OSError):  # if not writable, limits still work; CPU time reads 0
            _probe(bases["cpuacct"])
            found.append(bases["cpuacct"])
    return Backend("v1", found)


def detect(*, mountinfo: str = "/proc/self/mountinfo",
           proc_cgroup: str = "/proc/self/cgroup") -> Backend:
    """The best backend here: v2, else v1, else rlimits (logged once per process).  The
    keyword arguments exist for tests."""
    global _warned
    try:
        mounts, own = _mounts(mountinfo), _own(proc_cgroup)
    except OSError:
        mounts, own = [], {}
    for attempt in (_v2, _v1):
        try:
            backend = attempt(mounts, own)
        except OSError as e:
            log.debug("cgroup %s not usable: %s", attempt.__name__[1:], e)
            continue
        if backend is not None:
            return backend
    if not _warned:
        _warned = True
        log.warning(
            "cgroups are not writable here (no cgroup v2 subtree with the memory and cpu "
            "controllers, no writable cgroup v1 memory and cpu hierarchies), so memory is "
            "limited with RLIMIT_AS, an approximation. Lost: exact peak memory (Max Memory "
            "Used), out-of-memory detection and the CPU share in proportion to memory. To keep "
            "them, run as root or delegate a cgroup v2 subtree to your user, e.g. "
            "`systemd-run --user --scope -p Delegate=yes fastinvoke ...`.")
    return RlimitBackend()
