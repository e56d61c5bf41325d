# Sandboxed execution environments: the template's (enter_environment, once, as root, or
# enter_user_environment, once, unprivileged) and
# each worker's (fork_environment, at every fork).  The kernel steps and why they come in
# their order are in sandbox.h; this part turns Python arguments into C ones before the
# steps run and a failed step into an OSError naming it.  Policy (which paths, which uid,
# what to do when the kernel says no) is fastinvoke.runtime.sandbox's.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from posix.types cimport gid_t, uid_t

cdef extern from "sandbox.h" nogil:
    ctypedef struct fi_sbx_op:
        int kind
        const char *src
        const char *dst
        const char *data
        size_t size
        unsigned int mode
    ctypedef struct fi_sbx_worker:
        pass
    int FI_OP_RO_BIND
    int FI_OP_DEV_BIND
    int FI_OP_DIR
    int FI_OP_FILE
    int FI_OP_SYMLINK
    int FI_OP_TMPFS
    int FI_OP_PROC
    int FI_W_STEPS
    const char *fi_sbx_worker_steps[]
    int fi_sbx_enter(const fi_sbx_op *ops, int n_ops, uid_t uid, gid_t gid, const char *workdir,
                     long nofile, long nproc, int pdeathsig, int userns, char *step)
    int fi_sbx_userns(int pdeathsig, int *in_child, char *step)
    pid_t fi_sbx_clone(unsigned long flags)
    const char *FI_SBX_STORE
    void fi_sbx_worker_prepare(fi_sbx_worker *w, long tmp_mb, long nproc, int disable_userns,
                               int tmp_overlay)
    int fi_sbx_child(const fi_sbx_worker *w, int pdeathsig, const int *groups, int group_count)

DEF _STEP_SIZE = 320  # FI_SBX_STEP

# Where a worker mounts its private storage: the template's root must hold this directory.
WORKER_STORE = FI_SBX_STORE.decode()

_OP_KINDS = {"ro-bind": FI_OP_RO_BIND, "dev-bind": FI_OP_DEV_BIND, "dir": FI_OP_DIR,
             "file": FI_OP_FILE, "symlink": FI_OP_SYMLINK, "tmpfs": FI_OP_TMPFS,
             "proc": FI_OP_PROC}


cdef bytes _sbx_path(object path):
    cdef bytes raw = _os.fsencode(path)
    if not raw.startswith(b"/") or b"\0" in raw:
        raise ValueError(f"enter_environment: {path!r} is not an absolute path")
    return raw


def enter_environment(ops, uid_t uid, gid_t gid, str workdir="/", long nofile=1024,
                      long nproc=0, int pdeathsig=0):
    """Move this process into a new root built from ``ops``; then run as ``uid``/``gid``
    with no capability and no_new_privs.  Needs root; call it once, early, single-threaded.

    ``ops`` is a sequence of tuples, applied in order to an empty read-only tmpfs root:
    ``("ro-bind", source, dest)``, ``("dev-bind", node, dest)``, ``("dir", dest, mode)``,
    ``("file", dest, data_bytes, mode)``, ``("symlink", target, dest)``, ``("tmpfs", dest,
    size_mb, mode)``, ``("proc", dest, options)``.  Sources are host paths without symlinks
    (``os.path.realpath``).  Then ``chdir(workdir)``, RLIMIT_NOFILE = ``nofile``,
    RLIMIT_NPROC = ``nproc`` (if > 0), and ``pdeathsig`` re-armed (a uid change clears it).
    Raises OSError naming the failed step; the process is then half-changed and should exit.
    """
    _enter(ops, uid, gid, workdir, nofile, nproc, pdeathsig, False)


def enter_user_environment(ops, str workdir="/", long nofile=1024, long nproc=0,
                           int pdeathsig=0):
    """``enter_environment`` without root, where the kernel allows unprivileged user
    namespaces: a user namespace mapping only this process's uid and gid to themselves
    (files keep their owners), owning new mount and PID namespaces; then a fork.  This
    process stays outside as a stub that holds no fd, waits for the child and ends as it
    does (its exit status, or its signal re-raised); it never returns.  The child, PID 1 of
    the new PID namespace, arms ``pdeathsig`` (fired by the stub's death, which the stub's
    own parent-death signal ties to this process's parent), builds the root from ``ops``
    (a ``proc`` op shows the new PID namespace), keeps its uid and drops every capability
    its user namespace gave it; then no_new_privs and the limits, as ``enter_environment``.
    The fork runs the interpreter's fork hooks; call it single-threaded.

    Raises OSError naming the failed step: at "unshare(...)" nothing changed (the kernel
    refuses unprivileged user namespaces); past it, the process is half-changed and should
    exit (in the child, which then ends the stub).
    """
    _enter(ops, 0, 0, workdir, nofile, nproc, pdeathsig, True)  # the uid is kept


cdef _enter(ops, uid_t uid, gid_t gid, str workdir, long nofile, long nproc, int pdeathsig,
            bint userns):
    cdef Py_ssize_t count = len(ops)
    cdef Py_ssize_t i
    cdef fi_sbx_op *c_ops
    cdef char step[_STEP_SIZE]
    cdef int rc, err, in_child
    cdef bytes c_workdir = _sbx_path(workdir)
    cdef bytes src, dst, data
    keep = []  # the bytes the C ops point into
    c_ops = <fi_sbx_op *>PyMem_Malloc((count or 1) * sizeof(fi_sbx_op))
    if c_ops == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            op = ops[i]
            kind = _OP_KINDS.get(op[0])
            if kind is None:
                raise ValueError(f"enter_environment: unknown op {op[0]!r}")
            c_ops[i].kind = kind
            c_ops[i].src = c_ops[i].data = NULL
            c_ops[i].size = c_ops[i].mode = 0
            if kind == FI_OP_RO_BIND or kind == FI_OP_DEV_BIND:
                src, dst = _sbx_path(op[1]), _sbx_path(op[2])
            elif kind == FI_OP_SYMLINK:
                src, dst = _os.fsencode(op[1]), _sbx_path(op[2])
            elif kind == FI_OP_DIR:
                src, dst, c_ops[i].mode = None, _sbx_path(op[1]), op[2]
            elif kind == FI_OP_FILE:
                src, dst, data, c_ops[i].mode = None, _sbx_path(op[1]), bytes(op[2]), op[3]
                keep.append(data)
                c_ops[i].data, c_ops[i].size = data, len(data)
            elif kind == FI_OP_TMPFS:
                src, dst, c_ops[i].size, c_ops[i].mode = None, _sbx_path(op[1]), op[2], op[3]
            else:
                src, dst, data = None, _sbx_path(op[1]), op[2].encode()
                keep.append(data)
                c_ops[i].data = data
            keep += [src, dst]
            c_ops[i].dst = dst
            if src is not None:
                c_ops[i].src = src
        step[0] = 0
        rc = 0
        if userns:
            PyOS_BeforeFork()
            rc = fi_sbx_userns(pdeathsig, &in_child, step)
            err = errno
            if in_child:
                PyOS_AfterFork_Child()
            else:
                PyOS_AfterFork_Parent()
        if rc == 0:
            rc = fi_sbx_enter(c_ops, <int>count, uid, gid, c_workdir, nofile, nproc, pdeathsig,
                              userns, step)
            err = errno
    finally:
        PyMem_Free(c_ops)
    if rc != 0:
        name = "enter_user_environment: " if userns else "enter_environment: "
        raise os_error(err, name + step.decode(errors="replace"))


cdef pid_t _clone_environment(long tmp_mb, int pdeathsig, object cgroup_procs_fds, long nproc,
                              bint disable_userns, bint tmp_overlay, bint probe) except -1:
    cdef fi_sbx_worker w
    cdef int fds[2]
    cdef int report[2]
    cdef int groups[_MAX_GROUPS]
    cdef int group_count = len(cgroup_procs_fds)
    cdef int i, err, step, status
    cdef pid_t pid
    cdef ssize_t n
    if tmp_mb <= 0:
        raise ValueError("fork_environment: tmp_mb must be positive")
    if group_count > _MAX_GROUPS:
        raise ValueError(f"fork_environment: at most {_MAX_GROUPS} cgroups")
    for i in range(group_count):
        groups[i] = cgroup_procs_fds[i]
    fi_sbx_worker_prepare(&w, tmp_mb, nproc, disable_userns, tmp_overlay)
    if pipe2(fds, O_CLOEXEC) != 0:
        raise os_error(errno, "fork_environment: pipe2")
    PyOS_BeforeFork()
    pid = fi_sbx_clone(CLONE_NEWUSER | CLONE_NEWNS)
    if pid == 0:
        close(fds[0])
        step = fi_sbx_child(&w, pdeathsig, groups, group_count)
        if step:
            report[0] = step
            report[1] = errno
            write(fds[1], report, sizeof(report))
            _exit(_CHILD_SETUP_FAILED)
        if probe:
            _exit(0)
        close(fds[1])
        PyOS_AfterFork_Child()
        return 0
    err = errno
    PyOS_AfterFork_Parent()
    close(fds[1])
    if pid < 0:
        close(fds[0])
        raise os_error(err, "fork_environment: clone(CLONE_NEWUSER|CLONE_NEWNS)")
    while True:
        n = read(fds[0], report, sizeof(report))
        if n < 0 and errno == EINTR:
            continue
        break
    close(fds[0])
    if probe:
        while waitpid(pid, &status, 0) < 0 and errno == EINTR:
            pass
    if n == sizeof(report):
        step = report[0] if 0 < report[0] < FI_W_STEPS else 0
        raise os_error(report[1], "fork_environment: "
                       + fi_sbx_worker_steps[step].decode() + f" (child {pid})")
    return pid


def fork_environment(long tmp_mb, int pdeathsig=9, cgroup_procs_fds=(), long nproc=1024,
                     bint disable_userns=True, bint tmp_overlay=True):
    """Fork this process into a new user and mount namespace; return 0 in the child and the
    child's pid in the parent, as ``fork_worker`` does (the interpreter's fork hooks run
    around it; the child runs them once it is set up).  The child stays in this process's
    PID namespace: its pid is the one returned here, its parent this process, and its /proc
    this process's.

    In the child, in order, before any Python code: ``pdeathsig`` armed (and the parent
    checked), the cgroups of ``cgroup_procs_fds`` joined, setgroups denied and its uid and
    gid mapped to themselves; then /tmp: with ``tmp_overlay``, a private tmpfs of ``tmp_mb``
    MiB mounted on ``WORKER_STORE`` (which must exist), its ``upper`` (mode 1777) and
    ``work`` directories made, an overlay mounted on /tmp with the template's /tmp as its
    lower layer, and the store detached; without it, an empty tmpfs of ``tmp_mb`` MiB on
    /tmp.  Then no nested user namespaces (``disable_userns``), RLIMIT_NPROC = ``nproc``
    (if > 0), no capabilities, no_new_privs.

    Raises OSError naming the step that failed: a kernel that refuses unprivileged user
    namespaces fails at the clone or at the first write or mount; one that cannot mount
    an overlay in a user namespace (before Linux 5.11) at "mount overlay on /tmp", with no
    fallback here (``probe_environment`` tells the caller which mode works).

    A raw clone runs none of glibc's own fork handlers (malloc's arena locks, stdio's list
    lock, ``pthread_atfork`` handlers of C libraries): fork from a single-threaded process.
    Should another thread hold such a lock at that instant, the child hangs on it; it never
    gains anything.
    """
    return _clone_environment(tmp_mb, pdeathsig, cgroup_procs_fds, nproc, disable_userns,
                              tmp_overlay, False)


def probe_environment(long tmp_mb=1, long nproc=0, bint disable_userns=True,
                      bint tmp_overlay=True):
    """Set up one worker environment as ``fork_environment`` does, let it exit at once and
    wait for it.  Returns None, or raises the OSError ``fork_environment`` would raise."""
    _clone_environment(tmp_mb, 0, (), nproc, disable_userns, tmp_overlay, True)
