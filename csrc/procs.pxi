# Fork and reap.  A worker is a fork of its function's template process: the child gets
# its parent-death signal and joins its cgroup *before* any Python code runs in it, and a
# failure there reaches the parent through a close-on-exec error pipe (as subprocess does
# for exec failures), so the parent never manages a half-made worker.

cdef int _CHILD_SETUP_FAILED = 127


DEF _MAX_GROUPS = 4


def fork_worker(int pdeathsig=9, cgroup_procs_fds=()):
    """Fork this process; return 0 in the child and the child's pid in the parent.

    The interpreter's fork hooks run around the fork (``os.register_at_fork`` handlers,
    the import lock, the GIL state), exactly as ``os.fork`` runs them.  In the child:
    ``prctl(PR_SET_PDEATHSIG, pdeathsig)`` so it dies with its parent (re-checking the
    parent afterwards closes the race with a parent that died first), then, if
    ``cgroup_procs_fds`` are given, ``write("0")`` to each of those open ``cgroup.procs``
    files, which moves the child into each group (v2 has one; v1 one per hierarchy).  Raises OSError in the
    parent when the child could not be set up; the child then exits with status 127.
    """
    cdef int fds[2]
    cdef int groups[_MAX_GROUPS]
    cdef int group_count = len(cgroup_procs_fds)
    cdef int i
    cdef int err = 0
    cdef pid_t parent = getpid()
    cdef pid_t pid
    cdef ssize_t n
    if group_count > _MAX_GROUPS:
        raise ValueError(f"fork_worker: at most {_MAX_GROUPS} cgroups")
    for i in range(group_count):
        groups[i] = cgroup_procs_fds[i]
    if pipe2(fds, O_CLOEXEC) != 0:
        raise os_error(errno, "fork_worker: pipe2")
    PyOS_BeforeFork()
    pid = fork()
    if pid == 0:
        PyOS_AfterFork_Child()
        close(fds[0])
        if pdeathsig and prctl(PR_SET_PDEATHSIG, <unsigned long>pdeathsig, 0, 0, 0) != 0:
            err = errno
        elif pdeathsig and getppid() != parent:
            err = ESRCH
        else:
            for i in range(group_count):
                if write(groups[i], b"0", 1) != 1:
                    err = errno
                    break
        if err:
            write(fds[1], &err, sizeof(int))
            _exit(_CHILD_SETUP_FAILED)
        close(fds[1])
        return 0
    err = errno
    PyOS_AfterFork_Parent()
    close(fds[1])
    if pid < 0:
        close(fds[0])
        raise os_error(err, "fork_worker: fork")
    err = 0
    while True:
        n = read(fds[0], &err, sizeof(int))
        if n < 0 and errno == EINTR:
            continue
        break
    close(fds[0])
    if n == sizeof(int):
        raise os_error(err, f"fork_worker: setting up child {pid} failed")
    return pid


def reap():
    """Collect every child that has ended, without blocking.

    Returns a list of ``(pid, exit_status, signal, max_rss_kb, user_us, system_us)``:
    ``exit_status`` is -1 when the child was killed by ``signal`` and ``signal`` is 0
    when it exited; the resource figures come from ``wait4``'s rusage.
    """
    cdef int status = 0
    cdef rusage ru
    cdef pid_t pid
    ended = []
    while True:
        pid = wait4(-1, &status, WNOHANG, &ru)
        if pid == 0:
            break
        if pid < 0:
            if errno == EINTR:
                continue
            if errno == ECHILD:
                break
            raise os_error(errno, "reap: wait4")
        ended.append((
            pid,
            WEXITSTATUS(status) if WIFEXITED(status) else -1,
            WTERMSIG(status) if WIFSIGNALED(status) else 0,
            ru.ru_maxrss,
            ru.ru_utime.tv_sec * 1_000_000 + ru.ru_utime.tv_usec,
            ru.ru_stime.tv_sec * 1_000_000 + ru.ru_stime.tv_usec,
        ))
    return ended


cpdef long long monotonic_ns():
    """CLOCK_MONOTONIC in nanoseconds, without the float detour of time.monotonic()."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1_000_000_000 + ts.tv_nsec


def set_parent_death_signal(int sig):
    """Ask the kernel to send ``sig`` to this process when its parent thread ends."""
    if prctl(PR_SET_PDEATHSIG, <unsigned long>sig, 0, 0, 0) != 0:
        raise os_error(errno, "prctl(PR_SET_PDEATHSIG)")


cpdef long max_rss_kb():
    """This process's peak resident set size in KiB (getrusage without the Python struct)."""
    cdef rusage ru
    getrusage(RUSAGE_SELF, &ru)
    return ru.ru_maxrss


cpdef bint has_children():
    """Whether this process has a child, running or ended and not yet waited for (waitid
    with WNOWAIT: nothing is reaped, so ``subprocess`` still collects its own)."""
    cdef siginfo_t info
    return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0
