/* Sandboxed execution environments: the kernel steps, in C.
 *
 * The entry points, used by sandbox.pxi:
 *
 * - fi_sbx_enter: once, in a function's template process.  Root mode: a new mount
 *   namespace whose root is a tmpfs holding only what the op list names, then an
 *   unprivileged uid/gid with no capabilities and no_new_privs.  Unprivileged mode (after
 *   fi_sbx_userns: a user namespace owning new mount and PID namespaces, bubblewrap's
 *   unprivileged mode): the same root, the caller's uid kept, every capability in its user
 *   namespace dropped.  The order is
 *   bubblewrap's (containers/bubblewrap, bubblewrap.c: setup_newroot and the two
 *   pivot_root calls in main): make every mount private, pivot into a tmpfs base with the
 *   old root below it, build the new root from the old root's paths, detach the old root,
 *   pivot into the new root, drop privileges.
 *
 * - fi_sbx_clone + fi_sbx_child: at each worker fork, from the now unprivileged template.
 *   A raw clone(CLONE_NEWUSER|CLONE_NEWNS) that returns in the child like fork() does.
 *   No PID namespace (a PID 1 ignores the signals it sends itself, pid_namespaces(7)): a
 *   worker keeps its real pid, its parent and the template's /proc, where hidepid=2 shows
 *   only what it may ptrace: its own processes, since its user namespace keeps it from
 *   its template's and its siblings' (a target in another user namespace takes
 *   CAP_SYS_PTRACE over that namespace) and its uid from everyone else's.
 *   The child maps its own uid (user_namespaces(7): setgroups "deny" before gid_map),
 *   mounts its own /tmp (an overlay over the template's, or a plain tmpfs) and drops every
 *   capability its new user namespace gave it.  Only system calls run between the clone
 *   and the child's return (no allocation, no lock): every string it writes was prepared
 *   by the parent.
 *
 * Every function returns 0, or -1 with errno set and *step naming what failed.
 */
#ifndef FASTINVOKE_SANDBOX_H
#define FASTINVOKE_SANDBOX_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __NR_clone3
#define __NR_clone3 435  /* the same number on every architecture */
#endif
#ifndef __NR_close_range
#define __NR_close_range 436  /* the same number on every architecture */
#endif
#ifndef SYS_close_range
#define SYS_close_range __NR_close_range
#endif
#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

enum {
    FI_OP_RO_BIND,   /* src -> dst, read-only, nosuid, nodev */
    FI_OP_DEV_BIND,  /* a device node src -> dst, nosuid, noexec */
    FI_OP_DIR,       /* mkdir dst, mode */
    FI_OP_FILE,      /* dst holding data[0:size], mode */
    FI_OP_SYMLINK,   /* dst -> src */
    FI_OP_TMPFS,     /* a tmpfs at dst of size MiB, root dir mode */
    FI_OP_PROC,      /* a proc at dst with the mount options in data */
};

typedef struct {
    int kind;
    const char *src;
    const char *dst;
    const char *data;
    size_t size;
    unsigned int mode;
} fi_sbx_op;

#define FI_SBX_BASE "/tmp"  /* any existing directory: bubblewrap uses /tmp too */
#define FI_SBX_STEP 320

static int fi_sbx_fail(char *step, const char *what, const char *path) {
    int err = errno;
    snprintf(step, FI_SBX_STEP, "%s%s%s", what, path ? " " : "", path ? path : "");
    errno = err;
    return -1;
}

/* mkdir -p of path's parents (not path itself), as 0755. */
static int fi_sbx_parents(const char *path) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* A bind's per-mount flags the kernel may have locked (a mount from a more privileged
 * namespace keeps nosuid/nodev/noexec/atime: mount(2), "MS_REMOUNT"), kept on remount as
 * bubblewrap's bind_mount does. */
static unsigned long fi_sbx_kept_flags(const char *path) {
    struct statvfs st;
    unsigned long flags = 0;
    if (statvfs(path, &st) != 0)
        return 0;
    if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

/* One op, the old root at /oldroot and the new one at /newroot (cwd is the base). */
static int fi_sbx_op_apply(const fi_sbx_op *op, char *step) {
    char dst[PATH_MAX], src[PATH_MAX], opts[64];
    struct stat st;
    unsigned long flags;
    int fd;
    if (snprintf(dst, sizeof(dst), "/newroot%s", op->dst) >= (int)sizeof(dst)) {
        errno = ENAMETOOLONG;
        return fi_sbx_fail(step, "path", op->dst);
    }
    if (fi_sbx_parents(dst) != 0)
        return fi_sbx_fail(step, "mkdir parents of", op->dst);
    switch (op->kind) {
    case FI_OP_RO_BIND:
    case FI_OP_DEV_BIND:
        if (snprintf(src, sizeof(src), "/oldroot%s", op->src) >= (int)sizeof(src)) {
            errno = ENAMETOOLONG;
            return fi_sbx_fail(step, "path", op->src);
        }
        if (stat(src, &st) != 0)
            return fi_sbx_fail(step, "stat", op->src);
        if (S_ISDIR(st.st_mode)) {
            if (mkdir(dst, 0755) != 0 && errno != EEXIST)
                return fi_sbx_fail(step, "mkdir", op->dst);
        } else {
            fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
            if (fd < 0)
                return fi_sbx_fail(step, "create mount point", op->dst);
            close(fd);
        }
        /* Not MS_REC: nothing mounted below the source comes along unless listed. */
        if (mount(src, dst, NULL, MS_BIND, NULL) != 0)
            return fi_sbx_fail(step, "bind", op->src);
        /* A bind ignores its flags; they take effect on a remount (mount(2), MS_BIND). */
        flags = MS_BIND | MS_REMOUNT | MS_NOSUID | fi_sbx_kept_flags(dst);
        flags |= op->kind == FI_OP_RO_BIND ? MS_RDONLY | MS_NODEV : MS_NOEXEC;
        if (op->kind == FI_OP_DEV_BIND)
            flags &= ~(unsigned long)MS_NODEV;
        if (mount(NULL, dst, NULL, flags, NULL) != 0)
            return fi_sbx_fail(step, "remount read-only", op->dst);
        return 0;
    case FI_OP_DIR:
        if (mkdir(dst, op->mode) != 0 && errno != EEXIST)
            return fi_sbx_fail(step, "mkdir", op->dst);
        if (chmod(dst, op->mode) != 0)  /* not the umask's */
            return fi_sbx_fail(step, "chmod", op->dst);
        return 0;
    case FI_OP_FILE:
        fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, op->mode);
        if (fd < 0)
            return fi_sbx_fail(step, "create", op->dst);
        if (write(fd, op->data, op->size) != (ssize_t)op->size || fchmod(fd, op->mode) != 0) {
            int err = errno;
            close(fd);
            errno = err ? err : EIO;
            return fi_sbx_fail(step, "write", op->dst);
        }
        close(fd);
        return 0;
    case FI_OP_SYMLINK:
        if (symlink(op->src, dst) != 0)
            return fi_sbx_fail(step, "symlink", op->dst);
        return 0;
    case FI_OP_TMPFS:
        if (mkdir(dst, 0755) != 0 && errno != EEXIST)
            return fi_sbx_fail(step, "mkdir", op->dst);
        snprintf(opts, sizeof(opts), "size=%zum,mode=%o", op->size, op->mode);
        if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
            return fi_sbx_fail(step, "mount tmpfs on", op->dst);
        return 0;
    case FI_OP_PROC:
        if (mkdir(dst, 0555) != 0 && errno != EEXIST)
            return fi_sbx_fail(step, "mkdir", op->dst);
        if (mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, op->data) != 0)
            return fi_sbx_fail(step, "mount proc on", op->dst);
        return 0;
    }
    errno = EINVAL;
    return fi_sbx_fail(step, "unknown op for", op->dst);
}

static int fi_sbx_write(const char *path, const char *data) {
    size_t n = strlen(data);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (write(fd, data, n) != (ssize_t)n) {
        int err = errno;
        close(fd);
        errno = err ? err : EIO;
        return -1;
    }
    return close(fd);
}

/* A user namespace's maps of the caller's own uid and gid to themselves, written from
 * inside it (user_namespaces(7): setgroups "deny" first, or gid_map is refused). */
#define FI_SBX_MAP 48

static void fi_sbx_id_maps(char *uid_map, char *gid_map) {
    unsigned int uid = (unsigned int)getuid(), gid = (unsigned int)getgid();
    snprintf(uid_map, FI_SBX_MAP, "%u %u 1\n", uid, uid);
    snprintf(gid_map, FI_SBX_MAP, "%u %u 1\n", gid, gid);
}

/* 0, or which write failed: 1 setgroups, 2 uid_map, 3 gid_map (errno set). */
static int fi_sbx_map_ids(const char *uid_map, const char *gid_map) {
    if (fi_sbx_write("/proc/self/setgroups", "deny") != 0)
        return 1;
    if (fi_sbx_write("/proc/self/uid_map", uid_map) != 0)
        return 2;
    if (fi_sbx_write("/proc/self/gid_map", gid_map) != 0)
        return 3;
    return 0;
}

static int fi_sbx_drop_bounding_set(void) {
    /* PR_CAPBSET_DROP answers EINVAL past the kernel's last capability. */
    for (unsigned long cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL)
                return 0;
            return -1;
        }
    }
    return 0;
}

static int fi_sbx_clear_caps(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &header, data);
}

static int fi_sbx_caps_empty(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0)
        return 0;
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return 0;
    return 1;
}

/* The new root, in a mount namespace of the process's own: from making every mount private
 * to chdir(workdir).  ops build it (paths absolute, sources already resolved: they are
 * looked up under the old root, where an absolute symlink would point back into the new
 * one). */
static int fi_sbx_build_root(const fi_sbx_op *ops, int n_ops, const char *workdir,
                             char *step) {
    int oldroot;
    /* Nothing mounted from now on may propagate back to the host (mount_namespaces(7),
     * "Shared subtrees"); pivot_root also refuses a shared old root. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return fi_sbx_fail(step, "make / private (MS_REC|MS_PRIVATE)", NULL);
    if (mount("tmpfs", FI_SBX_BASE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0)
        return fi_sbx_fail(step, "mount the base tmpfs on", FI_SBX_BASE);
    if (chdir(FI_SBX_BASE) != 0)
        return fi_sbx_fail(step, "chdir", FI_SBX_BASE);
    if (mkdir("newroot", 0755) != 0 || mkdir("oldroot", 0755) != 0)
        return fi_sbx_fail(step, "mkdir newroot, oldroot in the base", NULL);
    /* First pivot (bubblewrap): the base becomes /, the old root /oldroot, so that every
     * source path stays reachable, even one under the directory the base covers. */
    if (syscall(SYS_pivot_root, FI_SBX_BASE, "oldroot") != 0)
        return fi_sbx_fail(step, "pivot_root to the base", NULL);
    if (chdir("/") != 0)
        return fi_sbx_fail(step, "chdir /", NULL);
    if (mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m") != 0)
        return fi_sbx_fail(step, "mount the root tmpfs", NULL);
    for (int i = 0; i < n_ops; i++)
        if (fi_sbx_op_apply(&ops[i], step) != 0)
            return -1;
    /* The old root must be private before it is detached, or the detach propagates. */
    if (mount("oldroot", "/oldroot", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return fi_sbx_fail(step, "make /oldroot private", NULL);
    if (umount2("/oldroot", MNT_DETACH) != 0)
        return fi_sbx_fail(step, "detach the old root", NULL);
    /* Second pivot: pivot_root(".", ".") stacks the base over the new root; detaching it
     * leaves the new root alone (pivot_root(2), NOTES). */
    oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0)
        return fi_sbx_fail(step, "open the base", NULL);
    if (chdir("/newroot") != 0 || syscall(SYS_pivot_root, ".", ".") != 0) {
        close(oldroot);
        return fi_sbx_fail(step, "pivot_root to the new root", NULL);
    }
    if (fchdir(oldroot) != 0 || umount2(".", MNT_DETACH) != 0) {
        close(oldroot);
        return fi_sbx_fail(step, "detach the base", NULL);
    }
    close(oldroot);
    if (chdir("/") != 0)
        return fi_sbx_fail(step, "chdir /", NULL);
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
              NULL) != 0)
        return fi_sbx_fail(step, "remount / read-only", NULL);
    if (chdir(workdir) != 0)
        return fi_sbx_fail(step, "chdir", workdir);
    return 0;
}

/* Root mode: another uid/gid.  The bounding set went while still root (it needs
 * CAP_SETPCAP); groups before gid before uid (each needs the privilege the next drops). */
static int fi_sbx_change_uid(uid_t uid, gid_t gid, char *step) {
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (setgroups(0, NULL) != 0)
        return fi_sbx_fail(step, "setgroups([])", NULL);
    if (setresgid(gid, gid, gid) != 0)
        return fi_sbx_fail(step, "setresgid", NULL);
    if (setresuid(uid, uid, uid) != 0)
        return fi_sbx_fail(step, "setresuid", NULL);
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0 ||
        ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid) {
        errno = EPERM;
        return fi_sbx_fail(step, "check uid and gid", NULL);
    }
    return 0;
}

/* The template's environment.  Root mode (userns 0): a new mount namespace, the root
 * fi_sbx_build_root makes, then uid/gid.  Unprivileged mode (userns 1, after fi_sbx_userns):
 * the same root in the namespaces already entered, the uid kept.  Both: no capabilities,
 * no_new_privs, RLIMIT_NOFILE and (nproc > 0) RLIMIT_NPROC; in root mode the
 * parent-death signal re-armed, since commit_creds clears it when the uid changes (prctl(2),
 * PR_SET_PDEATHSIG). */
static int fi_sbx_enter(const fi_sbx_op *ops, int n_ops, uid_t uid, gid_t gid,
                        const char *workdir, long nofile, long nproc, int pdeathsig,
                        int userns, char *step) {
    pid_t parent = getppid();
    struct rlimit limit;

    if (!userns && unshare(CLONE_NEWNS) != 0)
        return fi_sbx_fail(step, "unshare(CLONE_NEWNS)", NULL);
    if (fi_sbx_build_root(ops, n_ops, workdir, step) != 0)
        return -1;
    if (fi_sbx_drop_bounding_set() != 0)
        return fi_sbx_fail(step, "prctl(PR_CAPBSET_DROP)", NULL);
    if (!userns && fi_sbx_change_uid(uid, gid, step) != 0)
        return -1;
    /* setresuid cleared the permitted and effective sets, not the inheritable one; in the
     * unprivileged mode every set is still full (user_namespaces(7)). */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return fi_sbx_fail(step, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", NULL);
    if (fi_sbx_clear_caps() != 0)
        return fi_sbx_fail(step, "capset", NULL);
    if (!fi_sbx_caps_empty()) {
        errno = EPERM;
        return fi_sbx_fail(step, "check capabilities", NULL);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fi_sbx_fail(step, "prctl(PR_SET_NO_NEW_PRIVS)", NULL);
    /* The uid change made the process non-dumpable, which gives /proc/self to root and so
     * keeps a worker from writing its own uid_map (bubblewrap's drop_privs does the same). */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
        return fi_sbx_fail(step, "prctl(PR_SET_DUMPABLE)", NULL);
    limit.rlim_cur = limit.rlim_max = (rlim_t)nofile;
    if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &limit) != 0)
        return fi_sbx_fail(step, "setrlimit(RLIMIT_NOFILE)", NULL);
    limit.rlim_cur = limit.rlim_max = (rlim_t)nproc;
    if (nproc > 0 && setrlimit(RLIMIT_NPROC, &limit) != 0)
        return fi_sbx_fail(step, "setrlimit(RLIMIT_NPROC)", NULL);
    if (pdeathsig && !userns) {
        if (prctl(PR_SET_PDEATHSIG, (unsigned long)pdeathsig, 0, 0, 0) != 0)
            return fi_sbx_fail(step, "prctl(PR_SET_PDEATHSIG)", NULL);
        if (getppid() != parent) {
            errno = ESRCH;
            return fi_sbx_fail(step, "the parent died", NULL);
        }
    }
    return 0;
}

/* ---- the unprivileged mode's namespaces ----------------------------------------------- */

/* Every fd but keep (close_range(2), or one by one before Linux 5.9). */
static void fi_sbx_close_all_but(int keep) {
    struct rlimit limit;
    if (syscall(SYS_close_range, 0U, (unsigned int)keep - 1, 0U) == 0 &&
        syscall(SYS_close_range, (unsigned int)keep + 1, ~0U, 0U) == 0)
        return;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur > 1 << 20)
        limit.rlim_cur = 1 << 20;
    for (int fd = 0; fd < (int)limit.rlim_cur; fd++)
        if (fd != keep)
            close(fd);
}

/* The parent left outside the PID namespace: the process the server started and watches.
 * It holds nothing (every fd closed but alive, whose closing tells the child it died), waits
 * for the child and ends as it did, re-raising its signal.  Its parent-death signal (the
 * server's) stays armed: unshare kept it (commit_creds keeps it for a user namespace the
 * caller owns), and its death fires the child's. */
static void __attribute__((noreturn)) fi_sbx_stub(pid_t child, int alive) {
    struct rlimit none = {0, 0};
    sigset_t set;
    int status, sig;
    fi_sbx_close_all_but(alive);
    for (sig = 1; sig < NSIG; sig++)  /* the interpreter's handlers are not here to run */
        signal(sig, SIG_DFL);
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            _exit(127);
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    sig = WTERMSIG(status);
    setrlimit(RLIMIT_CORE, &none);  /* the child's core, if any, is the one that counts */
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}

/* The unprivileged mode's namespaces, as bubblewrap's unprivileged mode makes them: a user
 * namespace mapping only the caller's uid and gid to themselves (user_namespaces(7):
 * setgroups "deny" before gid_map), owning a new mount and PID namespace.  Then a fork: the
 * parent becomes fi_sbx_stub; the child, PID 1 of the new PID namespace (pid_namespaces(7)),
 * arms pdeathsig (fired by the stub's death) and returns 0 with *in_child set.  -1 with
 * errno and step: before the fork, in the caller (*in_child 0), or in the child. */
static int fi_sbx_userns(int pdeathsig, int *in_child, char *step) {
    static const char *const maps[] = {
        "", "write /proc/self/setgroups", "write /proc/self/uid_map", "write /proc/self/gid_map"};
    char uid_map[FI_SBX_MAP], gid_map[FI_SBX_MAP];
    struct pollfd stub;
    int alive[2], failed;
    pid_t pid;
    *in_child = 0;
    fi_sbx_id_maps(uid_map, gid_map);
    /* A process that changed its uid is not dumpable, which gives its /proc/self, and so
     * the maps, to root (as in fi_sbx_enter). */
    if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
        return fi_sbx_fail(step, "prctl(PR_SET_DUMPABLE)", NULL);
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID) != 0)
        return fi_sbx_fail(step, "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID)", NULL);
    if ((failed = fi_sbx_map_ids(uid_map, gid_map)) != 0)
        return fi_sbx_fail(step, maps[failed], NULL);
    if (pipe2(alive, O_CLOEXEC) != 0)
        return fi_sbx_fail(step, "pipe2", NULL);
    pid = fork();
    if (pid < 0) {
        int err = errno;
        close(alive[0]);
        close(alive[1]);
        errno = err;
        return fi_sbx_fail(step, "fork into the PID namespace", NULL);
    }
    if (pid > 0)
        fi_sbx_stub(pid, alive[1]);
    *in_child = 1;
    close(alive[1]);
    if (pdeathsig && prctl(PR_SET_PDEATHSIG, (unsigned long)pdeathsig, 0, 0, 0) != 0)
        return fi_sbx_fail(step, "prctl(PR_SET_PDEATHSIG)", NULL);
    /* getppid() is 0 here whoever the parent is: the stub's end of the pipe tells instead. */
    stub.fd = alive[0];
    stub.events = POLLIN;
    if (poll(&stub, 1, 0) != 0) {
        close(alive[0]);
        errno = ESRCH;
        return fi_sbx_fail(step, "the parent died", NULL);
    }
    close(alive[0]);
    return 0;
}

/* ---- workers -------------------------------------------------------------------------- */

struct fi_clone_args {  /* struct clone_args up to CLONE_ARGS_SIZE_VER0 */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* clone(2) with fork()'s behaviour: the child returns here on a copy of the parent's stack.
 * CLONE_CHILD_SETTID stores the child's tid where glibc keeps the thread's (its address is
 * what glibc registered with set_tid_address, as glibc's own fork passes it), so glibc sees
 * the child's tid, not the parent's.  Without CONFIG_CHECKPOINT_RESTORE that address is
 * unknown and glibc keeps the parent's tid; raise() and getpid() do not depend on it. */
static pid_t fi_sbx_clone(unsigned long flags) {
    int *tid = NULL;
    struct fi_clone_args args;
    long pid;
    if (prctl(PR_GET_TID_ADDRESS, (unsigned long)&tid, 0, 0, 0) == 0 && tid != NULL)
        flags |= CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    memset(&args, 0, sizeof(args));
    args.flags = flags;
    args.child_tid = (uint64_t)(uintptr_t)tid;
    args.exit_signal = SIGCHLD;
    pid = syscall(__NR_clone3, &args, sizeof(args));
    if (pid >= 0 || errno != ENOSYS)  /* ENOSYS: before Linux 5.3, or a seccomp filter */
        return (pid_t)pid;
#if defined(__x86_64__)
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, NULL, tid, 0);
#elif defined(__aarch64__)
    return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, NULL, 0, tid);  /* tls before ctid */
#else
    return -1;  /* errno is still ENOSYS */
#endif
}

/* A worker's private storage: the template's root holds this empty directory (mode 0),
 * where each worker mounts its own tmpfs for the upper and work directories of its /tmp
 * overlay, then detaches it (the overlay keeps its own reference). */
#define FI_SBX_STORE "/.fastinvoke"
#define FI_SBX_UPPER FI_SBX_STORE "/upper"
#define FI_SBX_WORK FI_SBX_STORE "/work"

/* What a worker's child writes, prepared by the parent (no formatting after the clone). */
typedef struct {
    char uid_map[FI_SBX_MAP];
    char gid_map[FI_SBX_MAP];
    char tmp_options[64];
    long nproc;
    pid_t parent;
    int disable_userns;
    int tmp_overlay;
} fi_sbx_worker;

static void fi_sbx_worker_prepare(fi_sbx_worker *w, long tmp_mb, long nproc,
                                  int disable_userns, int tmp_overlay) {
    fi_sbx_id_maps(w->uid_map, w->gid_map);
    /* The store's root is the worker's alone; a plain /tmp is everyone's, as usual. */
    snprintf(w->tmp_options, sizeof(w->tmp_options), "size=%ldm,mode=%s", tmp_mb,
             tmp_overlay ? "0700" : "1777");
    w->nproc = nproc;
    w->parent = getpid();
    w->disable_userns = disable_userns;
    w->tmp_overlay = tmp_overlay;
}

/* Lower: the template's /tmp, what Init wrote (the path is resolved before the overlay
 * covers it); the template must not change it while workers live (overlayfs.rst, "Changes
 * to underlying filesystems").  userxattr: "user.overlay." xattrs, for an overlay mounted
 * in a user namespace (overlayfs.rst, "User xattr"; Linux 5.11).  It turns redirect_dir
 * off, so renaming a directory Init made fails with EXDEV, which mv(1) copes with
 * (overlayfs.rst, "renaming directories"). */
#define FI_SBX_OVERLAY_OPTIONS \
    "lowerdir=/tmp,upperdir=" FI_SBX_UPPER ",workdir=" FI_SBX_WORK ",userxattr"

/* The steps a child reports by index (the parent turns it into the step's name). */
enum {
    FI_W_PDEATHSIG = 1, FI_W_PARENT_GONE, FI_W_CGROUP, FI_W_SETGROUPS, FI_W_UID_MAP,
    FI_W_GID_MAP, FI_W_TMP, FI_W_STORE, FI_W_UPPER, FI_W_WORK, FI_W_OVERLAY,
    FI_W_DETACH_STORE, FI_W_NO_USERNS, FI_W_NPROC, FI_W_BOUNDING, FI_W_AMBIENT,
    FI_W_CAPSET, FI_W_NO_NEW_PRIVS, FI_W_STEPS
};

static const char *const fi_sbx_worker_steps[FI_W_STEPS] = {
    "?", "prctl(PR_SET_PDEATHSIG)", "the parent died before the child armed PR_SET_PDEATHSIG",
    "join cgroup", "write /proc/self/setgroups", "write /proc/self/uid_map",
    "write /proc/self/gid_map", "mount tmpfs on /tmp", "mount tmpfs on " FI_SBX_STORE,
    "mkdir " FI_SBX_UPPER, "mkdir " FI_SBX_WORK,
    "mount overlay on /tmp (" FI_SBX_OVERLAY_OPTIONS ")", "detach " FI_SBX_STORE,
    "write /proc/sys/user/max_user_namespaces", "setrlimit(RLIMIT_NPROC)",
    "prctl(PR_CAPBSET_DROP)", "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", "capset",
    "prctl(PR_SET_NO_NEW_PRIVS)",
};

/* The worker's /tmp: an overlay whose upper and work directories are on a private tmpfs of
 * the worker's size, so what it writes is its own and bounded, while what Init wrote
 * shows through from below, read-only (a change is copied up into the worker's tmpfs). */
static int fi_sbx_worker_tmp(const fi_sbx_worker *w) {
    const unsigned long flags = MS_NOSUID | MS_NODEV;
    if (!w->tmp_overlay)
        return mount("tmpfs", "/tmp", "tmpfs", flags, w->tmp_options) == 0 ? 0 : FI_W_TMP;
    if (mount("tmpfs", FI_SBX_STORE, "tmpfs", flags, w->tmp_options) != 0)
        return FI_W_STORE;
    /* A merged directory shows the upper one's metadata (overlayfs.rst, "Directories"):
     * 1777 as a /tmp is, by chmod since mkdir applies the umask.  The work directory must
     * be empty and on the upper's file system (same section). */
    if (mkdir(FI_SBX_UPPER, 0700) != 0 || chmod(FI_SBX_UPPER, 01777) != 0)
        return FI_W_UPPER;
    if (mkdir(FI_SBX_WORK, 0700) != 0)
        return FI_W_WORK;
    if (mount("overlay", "/tmp", "overlay", flags, FI_SBX_OVERLAY_OPTIONS) != 0)
        return FI_W_OVERLAY;
    /* The overlay holds private clones of its layers' mounts, so the store can leave the
     * tree: the function never sees the upper and work directories behind its /tmp, which
     * must not change under the overlay (overlayfs.rst, "Changes to underlying
     * filesystems"). */
    if (umount2(FI_SBX_STORE, MNT_DETACH) != 0)
        return FI_W_DETACH_STORE;
    return 0;
}

/* In the child, right after fi_sbx_clone: returns 0, or the failed step with errno set. */
static int fi_sbx_child(const fi_sbx_worker *w, int pdeathsig, const int *groups,
                        int group_count) {
    struct rlimit limit;
    int step;
    if (pdeathsig) {
        if (prctl(PR_SET_PDEATHSIG, (unsigned long)pdeathsig, 0, 0, 0) != 0)
            return FI_W_PDEATHSIG;
        if (getppid() != w->parent) {
            errno = ESRCH;
            return FI_W_PARENT_GONE;
        }
    }
    /* Join the cgroups first, so that everything the child allocates is charged there. */
    for (int i = 0; i < group_count; i++)
        if (write(groups[i], "0", 1) != 1)
            return FI_W_CGROUP;
    /* The /proc here is the template's, where /proc/self is this process too. */
    if ((step = fi_sbx_map_ids(w->uid_map, w->gid_map)) != 0)
        return FI_W_SETGROUPS + step - 1;  /* then FI_W_UID_MAP, FI_W_GID_MAP */
    /* Mounting needs CAP_SYS_ADMIN in the user namespace owning this mount namespace, which
     * the child has until it drops its capabilities below (user_namespaces(7)). */
    if ((step = fi_sbx_worker_tmp(w)) != 0)
        return step;
    /* No nested user namespace (bubblewrap's --disable-userns): without one the function
     * can never hold a capability again, and it cannot raise this limit back without
     * CAP_SYS_RESOURCE here, which it is about to lose. */
    if (w->disable_userns && fi_sbx_write("/proc/sys/user/max_user_namespaces", "0") != 0)
        return FI_W_NO_USERNS;
    /* Counted per (user namespace, uid) since Linux 5.14, so per worker here. */
    limit.rlim_cur = limit.rlim_max = (rlim_t)w->nproc;
    if (w->nproc > 0 && setrlimit(RLIMIT_NPROC, &limit) != 0)
        return FI_W_NPROC;
    if (fi_sbx_drop_bounding_set() != 0)
        return FI_W_BOUNDING;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return FI_W_AMBIENT;
    if (fi_sbx_clear_caps() != 0)
        return FI_W_CAPSET;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return FI_W_NO_NEW_PRIVS;
    return 0;
}

#endif
