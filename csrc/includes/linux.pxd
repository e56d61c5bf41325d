# Declarations of the Linux and CPython C APIs the core uses; all nogil-safe except the PyOS hooks.
from posix.types cimport pid_t

cdef extern from "<sys/prctl.h>" nogil:
    int PR_SET_PDEATHSIG
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)

cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        long tv_sec
        long tv_usec

cdef extern from "<sys/resource.h>" nogil:
    struct rusage:
        timeval ru_utime
        timeval ru_stime
        long ru_maxrss

cdef extern from "<sys/resource.h>" nogil:
    int RUSAGE_SELF
    int getrusage(int who, rusage *usage)

cdef extern from "<sys/stat.h>" nogil:
    ctypedef struct stat_t "struct stat":
        long long st_size
    int fstat(int fd, stat_t *buf)

cdef extern from "<sys/wait.h>" nogil:
    int WNOHANG
    bint WIFEXITED(int status)
    int WEXITSTATUS(int status)
    bint WIFSIGNALED(int status)
    int WTERMSIG(int status)
    pid_t wait4(pid_t pid, int *status, int options, rusage *ru)
    ctypedef struct siginfo_t:
        int si_pid
    int P_ALL
    int WEXITED
    int WNOWAIT
    int waitid(int idtype, unsigned int id, siginfo_t *infop, int options)

cdef extern from "<unistd.h>" nogil:
    pid_t fork()
    pid_t getpid()
    pid_t getppid()
    int pipe2(int *fds, int flags)
    ssize_t read(int fd, void *buf, size_t count)
    ssize_t write(int fd, const void *buf, size_t count)
    int close(int fd)
    void _exit(int status)

cdef extern from "<fcntl.h>" nogil:
    int O_CLOEXEC

cdef extern from "<errno.h>" nogil:
    int errno
    int EINTR
    int ESRCH
    int ECHILD
    int EBADF
    int EAGAIN

cdef extern from "<time.h>" nogil:
    struct timespec:
        long tv_sec
        long tv_nsec
    int CLOCK_MONOTONIC
    int clock_gettime(int clk, timespec *ts)

cdef extern from "Python.h":
    void PyOS_BeforeFork()
    void PyOS_AfterFork_Parent()
    void PyOS_AfterFork_Child()

cdef extern from "<sched.h>" nogil:
    int CLONE_NEWUSER
    int CLONE_NEWNS
    int CLONE_NEWPID

cdef extern from "<sys/wait.h>" nogil:
    pid_t waitpid(pid_t pid, int *status, int options)
