"""fastinvoke.pool.cgroups: limits, accounting and cleanup checked with real processes in real
groups (``privileged``), plus what needs no cgroups: ``cpu_share``, detection from fake
/proc files, the files written in a fake v2 or v1 tree, and the rlimit fallback."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fastinvoke.pool import cgroups
from fastinvoke.pool.cgroups import Backend, CgroupError, Group, Instance, cpu_share

MiB = 2**20
HOST_CPUS = os.cpu_count() or 1
_tags = itertools.count()


# -- helpers ----------------------------------------------------------------------------------

def spawn(group: Group, body: Callable[[], object] | None = None,
          argv: list[str] | None = None) -> int:
    """Fork a child that joins ``group`` (``write(fd, b"0")`` on each procs fd, as a worker
    does before running any code), applies ``preexec_limits()``, then execs ``argv`` or runs
    ``body`` and exits 0 (70 if it raised)."""
    fds = group.procs_fds()
    pid = os.fork()
    if pid == 0:  # never return into pytest from the child
        code = 0
        try:
            for fd in fds:
                os.write(fd, b"0")
            group.preexec_limits()
            if argv is not None:
                os.execv(argv[0], argv)
            elif body is not None:
                body()
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> int:
    """Reap ``pid``; its exit code, or minus the signal that killed it."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def touch(megabytes: int) -> None:
    """Allocate ``megabytes`` MiB and touch every page, so it is all resident and charged."""
    block = bytearray(megabytes * MiB)
    for i in range(0, len(block), 4096):
        block[i] = 1


def procs(directory: Path) -> list[int]:
    return [int(p) for p in (directory / "cgroup.procs").read_text().split()]


# -- without cgroups --------------------------------------------------------------------------

def test_cpu_share_is_proportional_to_memory_and_capped() -> None:
    assert cpu_share(128, 8) == pytest.approx(128 / 1769)
    assert cpu_share(1769, 8) == 1.0
    assert cpu_share(10240, HOST_CPUS) == min(6, HOST_CPUS)
    assert cpu_share(10240, 64) == pytest.approx(10240 / 1769)  # 5.79: under the cap of 6
    assert cpu_share(12000, 64) == 6.0
    assert cpu_share(3538, 1) == 1.0


def fake_proc(tmp_path: Path, mounts: list[str], own: str) -> dict[str, str]:
    """A fake /proc/self/mountinfo (``<type> <mount point> <root> <options>`` per mount, the
    mount point relative to ``tmp_path``) and /proc/self/cgroup, as detect()'s keywords."""
    lines = []
    for n, mount in enumerate(mounts):
        fstype, point, root, options = mount.split()
        lines.append(f"{30 + n} 20 0:{n} {root} {tmp_path / point} rw,relatime - {fstype} "
                     f"{fstype} {options}")
    (tmp_path / "mountinfo").write_text("\n".join(lines) + "\n")
    (tmp_path / "cgroup").write_text(own)
    return {"mountinfo": str(tmp_path / "mountinfo"), "proc_cgroup": str(tmp_path / "cgroup")}


def test_v2_on_a_fake_tree_writes_limits_and_reads_counters(tmp_path: Path) -> None:
    scope = tmp_path / "unified/user.slice/run-1.scope"
    scope.mkdir(parents=True)
    for d in (tmp_path / "unified", scope):
        (d / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (d / "cgroup.subtree_control").write_text("\n")
    backend = cgroups.detect(**fake_proc(tmp_path, ["cgroup2 unified / rw"],
                                         "0::/user.slice/run-1.scope\n"))
    assert (backend.name, backend.bases) == ("v2", [scope])
    assert (scope / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert not list(scope.glob("fastinvoke-*"))  # the probe group is gone

    instance = backend.instance(f"{os.getpid()}.fake")
    run = scope / f"fastinvoke-{os.getpid()}.fake"
    assert instance.parents == [run]
    assert (run / "cgroup.subtree_control").read_text() == "+memory +cpu"
    group = instance.group("w1", 128, "proportional", 8)
    assert group.dirs == [run / "w1"]
    assert (run / "w1/memory.max").read_text() == str(128 * MiB)
    assert (run / "w1/cpu.max").read_text() == "7236 100000"  # 128/1769 of a 100 ms period
    instance.group("w2", 1769 * 2, "weighted", 8)
    assert (run / "w2/cpu.weight").read_text() == "200"
    instance.group("w3", 128, "off", 8)
    assert not (run / "w3/cpu.max").exists() and not (run / "w3/cpu.weight").exists()

    d = group.dirs[0]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert not group.oom_killed()
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    assert group.oom_killed()
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert group.cpu_usage_ns() == 1_500_000
    (d / "memory.current").write_text("5000\n")  # no memory.peak (Linux < 5.19): tracked
    assert group.memory_peak_bytes() == 5000
    (d / "memory.current").write_text("3000\n")
    assert group.memory_peak_bytes() == 5000
    (d / "memory.peak").write_text("7000\n")
    assert group.memory_peak_bytes() == 7000

    with pytest.raises(CgroupError, match="own id"):
        instance.group("w1", 128, "off", 8)
    with pytest.raises(ValueError, match="worker id"):
        instance.group("../escape", 128, "off", 8)
    with pytest.raises(ValueError, match="cpu_mode"):
        instance.group("w4", 128, "fast", 8)
    with pytest.raises(ValueError, match="tag"):
        backend.instance("not-a-pid")


def test_v2_moves_processes_out_of_a_delegated_group_with_processes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scope = tmp_path / "unified/run-1.scope"
    scope.mkdir(parents=True)
    for d in (tmp_path / "unified", scope):
        (d / "cgroup.controllers").write_text("cpu memory pids\n")
    (scope / "cgroup.subtree_control").write_text("\n")
    (scope / "cgroup.procs").write_text("4321\n")
    control, real_write = scope / "cgroup.subtree_control", cgroups._write
    refused: list[Path] = []

    def write(path: Path, value: str, *, optional: bool = False) -> None:
        # the kernel refuses controllers in a non-root group that still holds processes
        if path == control and not refused and (scope / "cgroup.procs").read_text().strip():
            refused.append(path)
            raise OSError(16, "Device or resource busy")  # EBUSY
        real_write(path, value, optional=optional)

    monkeypatch.setattr(cgroups, "_write", write)
    monkeypatch.setattr(cgroups, "_warned", True)  # the rlimit fallback's log is tested below
    paths = fake_proc(tmp_path, ["cgroup2 unified / rw"], "0::/run-1.scope\n")
    # not delegated (e.g. a login session's scope): its processes are left where they are
    assert cgroups.detect(**paths).name == "rlimit"
    assert not (scope / "fastinvoke-front").exists()
    refused.clear()
    try:
        os.setxattr(scope, "user.delegate", b"1")  # as systemd marks a Delegate=yes group
    except OSError as e:
        pytest.skip(f"user xattrs unsupported in {tmp_path}: {e}")
    backend = cgroups.detect(**paths)
    assert refused and backend.bases == [scope]
    assert (scope / "fastinvoke-front/cgroup.procs").read_text() == "4321"
    assert control.read_text() == "+memory +cpu"
    # detected again from inside the leaf, the base is still the delegated group
    again = fake_proc(tmp_path, ["cgroup2 unified / rw"], "0::/run-1.scope/fastinvoke-front\n")
    (scope / "fastinvoke-front/cgroup.controllers").write_text("cpu memory pids\n")
    assert cgroups.detect(**again).bases == [scope]


def test_v1_on_a_fake_tree_writes_limits_and_reads_counters(tmp_path: Path) -> None:
    # memory in its own hierarchy mounted at a subtree root; cpu and cpuacct co-mounted
    (tmp_path / "memory/a").mkdir(parents=True)  # group /box/a, seen through the mount
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "unified").mkdir()  # hybrid: the v2 tree has no controllers, so not v2
    (tmp_path / "unified/cgroup.controllers").write_text("\n")
    backend = cgroups.detect(**fake_proc(
        tmp_path, ["cgroup2 unified / rw", "cgroup memory /box rw,memory",
                   "cgroup cpu,cpuacct / rw,cpu,cpuacct", "cgroup pids / rw,pids"],
        "9:pids:/\n4:memory:/box/a\n2:cpu,cpuacct:/\n0::/\n"))
    assert backend.name == "v1"
    assert backend.bases == [tmp_path / "memory/a", tmp_path / "cpu,cpuacct"]

    group = backend.instance(f"{os.getpid()}.fake").group("w1", 128, "proportional", 8)
    memory, cpu = group.dirs
    assert (memory / "memory.limit_in_bytes").read_text() == str(128 * MiB)
    assert not (memory / "memory.memsw.limit_in_bytes").exists()  # only where present
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "7236"
    weighted = backend.instance(f"{os.getpid()}.fake").group("w2", 128, "weighted", 8)
    assert (weighted.dirs[1] / "cpu.shares").read_text() == "74"  # round(1024 * 128/1769)

    (cpu / "cpuacct.usage").write_text("123456789\n")
    assert group.cpu_usage_ns() == 123456789
    (memory / "memory.max_usage_in_bytes").write_text("4096\n")
    assert group.memory_peak_bytes() == 4096
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.oom_killed()
    # kernels before 4.13 have no oom_kill count: failcnt and how the worker died decide
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (memory / "memory.failcnt").write_text("5\n")
    assert group.oom_killed(sigkilled=True) and not group.oom_killed(sigkilled=False)


def test_without_writable_cgroups_falls_back_to_rlimit_and_logs_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "_warned", False)
    paths = fake_proc(tmp_path, ["cgroup2 missing / rw"], "0::/\n")
    with caplog.at_level(logging.INFO, logger="fastinvoke"):
        assert cgroups.detect(**paths).name == "rlimit"
        assert cgroups.detect(**paths).name == "rlimit"
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    for words in ("RLIMIT_AS", "peak memory", "out-of-memory", "CPU share", "root",
                  "systemd-run --user --scope -p Delegate=yes"):
        assert words in record.getMessage()


def test_rlimit_group_limits_address_space_in_the_child() -> None:
    instance = cgroups.RlimitBackend().instance(str(os.getpid()))
    status = Path("/proc/self/status").read_text().splitlines()
    vm_size_kb = int(next(line.split()[1] for line in status if line.startswith("VmSize:")))
    memory_mb = vm_size_kb // 1024 + 64  # RLIMIT_AS counts what the process maps already
    group = instance.group("w1", memory_mb, "proportional", HOST_CPUS)
    assert group.procs_fds() == []

    def over_the_limit() -> None:
        try:
            bytearray(128 * MiB)
        except MemoryError:
            os._exit(3)

    assert wait(spawn(group, over_the_limit)) == 3
    assert wait(spawn(group, lambda: bytearray(16 * MiB))) == 0
    assert (group.memory_peak_bytes(), group.oom_killed(), group.cpu_usage_ns()) == (0, False, 0)
    group.remove()
    instance.remove()


# -- with real cgroups ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backend() -> Backend:
    found = cgroups.detect()
    if found.name == "rlimit":
        pytest.skip("cgroups are not writable here (detect() chose rlimit): run as root on a "
                    "machine with cgroup v1, or delegate a cgroup v2 subtree")
    return found


@pytest.fixture
def instance(backend: Backend) -> Iterator[Instance]:
    made = backend.instance(f"{os.getpid()}.test{next(_tags)}")
    yield made
    made.remove()
    assert not any(parent.exists() for parent in made.parents)


@pytest.mark.privileged
def test_child_joins_every_hierarchy_before_exec(backend: Backend, instance: Instance) -> None:
    group = instance.group("w1", 128, "proportional", HOST_CPUS)
    assert len(group.procs_fds()) == len(backend.bases)
    sleep = shutil.which("sleep")
    assert sleep
    pid = spawn(group, argv=[sleep, "30"])
    try:
        deadline = time.monotonic() + 5
        while not all(pid in procs(d) for d in group.dirs) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert all(pid in procs(d) for d in group.dirs)
        # /proc/<pid>/cgroup: "<hierarchy>:<controllers>:<path>", controllers "" for v2
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        paths = {c: path for _, cs, path in (line.split(":", 2) for line in lines)
                 for c in cs.split(",")}
        expected = f"/{instance.parents[0].name}/w1"
        for controller in ["memory", "cpu"] if backend.name == "v1" else [""]:
            assert paths[controller].endswith(expected)
    finally:
        os.kill(pid, signal.SIGKILL)
        assert wait(pid) == -signal.SIGKILL


@pytest.mark.privileged
def test_memory_limit_kills_with_sigkill_and_reports_oom_and_peak(instance: Instance) -> None:
    big = instance.group("big", 128, "off", HOST_CPUS)
    small = instance.group("small", 128, "off", HOST_CPUS)
    limit = 128 * MiB
    big_pid = spawn(big, lambda: touch(300))
    small_pid = spawn(small, lambda: touch(20))
    assert wait(big_pid) == -signal.SIGKILL
    assert wait(small_pid) == 0
    assert big.oom_killed()
    assert 0.8 * limit <= big.memory_peak_bytes() <= limit
    assert not small.oom_killed()
    assert 20 * MiB <= small.memory_peak_bytes() < limit


@pytest.mark.privileged
def test_memory_and_cpu_settings(backend: Backend, instance: Instance) -> None:
    weighted = instance.group("weighted", 128, "weighted", HOST_CPUS)
    off = instance.group("off", 128, "off", HOST_CPUS)
    if backend.name == "v2":
        assert (weighted.dirs[0] / "memory.max").read_text().strip() == str(128 * MiB)
        assert (weighted.dirs[0] / "cpu.weight").read_text().strip() == "7"
        assert (off.dirs[0] / "cpu.max").read_text().split()[0] == "max"
        swap = weighted.dirs[0] / "memory.swap.max"
        assert not swap.exists() or swap.read_text().strip() == "0"
    else:
        memory, cpu = weighted.dirs[:2]
        assert (memory / "memory.limit_in_bytes").read_text().strip() == str(128 * MiB)
        memsw = memory / "memory.memsw.limit_in_bytes"
        assert not memsw.exists() or memsw.read_text().strip() == str(128 * MiB)
        assert (cpu / "cpu.shares").read_text().strip() == "74"
        assert (off.dirs[1] / "cpu.cfs_quota_us").read_text().strip() == "-1"


def busy_for_a_second(report: int) -> None:
    """Spin for 1 s of wall time as this process sees it; write that time to ``report``."""
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        pass
    os.write(report, repr(time.monotonic() - start).encode())


@pytest.mark.privileged
def test_proportional_cpu_quota_follows_memory(backend: Backend, instance: Instance) -> None:
    if backend.name == "v1" and len(backend.bases) < 3 and not (
            backend.bases[1] / "cpuacct.usage").exists():
        pytest.skip("cgroup v1 without a cpuacct hierarchy: no CPU time to measure")
    shares = {}
    children = {}
    for memory_mb in (128, 256):
        group = instance.group(f"cpu{memory_mb}", memory_mb, "proportional", HOST_CPUS)
        read, write = os.pipe()
        pid = spawn(group, lambda write=write: busy_for_a_second(write))  # both run at once
        os.close(write)
        children[memory_mb] = (group, pid, read)
    for memory_mb, (group, pid, read) in children.items():
        assert wait(pid) == 0
        wall = float(os.read(read, 100))
        os.close(read)
        shares[memory_mb] = group.cpu_usage_ns() / 1e9 / wall
    print(f"CPU share of a core: {shares} (expected {128 / 1769:.3f} and {256 / 1769:.3f})",
          file=sys.stderr)
    assert 0.03 <= shares[128] <= 0.15
    assert 1.4 <= shares[256] / shares[128] <= 2.8


@pytest.mark.privileged
def test_remove_is_complete_and_idempotent(instance: Instance) -> None:
    group = instance.group("w1", 128, "proportional", HOST_CPUS)
    assert wait(spawn(group, lambda: touch(1))) == 0
    group.remove()
    group.remove()
    assert not any(d.exists() for d in group.dirs)
    instance.group("w2", 128, "off", HOST_CPUS)
    instance.remove()
    instance.remove()
    assert not any(parent.exists() for parent in instance.parents)


@pytest.mark.privileged
def test_next_instance_removes_groups_of_a_dead_front_end(backend: Backend) -> None:
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    wait(dead)  # its pid now names no process: a crashed run's tag
    crashed = backend.instance(str(dead))
    group = crashed.group("w1", 128, "off", HOST_CPUS)
    sleep = shutil.which("sleep")
    assert sleep
    orphan = spawn(group, argv=[sleep, "30"])  # a worker its front-end left running
    deadline = time.monotonic() + 5
    while orphan not in procs(group.dirs[0]) and time.monotonic() < deadline:
        time.sleep(0.005)

    fresh = backend.instance(f"{os.getpid()}.test{next(_tags)}")
    try:
        assert wait(orphan) == -signal.SIGKILL
        assert not any(d.exists() for d in group.dirs + crashed.parents)
    finally:
        fresh.remove()
        crashed.remove()
