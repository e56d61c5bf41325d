# The local hop: one worker's link to the front-end, two lanes in shared memory (lane.h: a
# request slot and a reply ring) with eventfd wake-ups.  The front-end makes the files
# (``lane_file``) and an eventfd per worker before the fork; both ends wrap them in a
# ``Link``.
#
#   front-end: Link(in_fd=reply lane, out_fd=request lane, sleep_fd=-1, wake_fd=worker's eventfd)
#   worker:    Link(in_fd=request lane, out_fd=reply lane, sleep_fd=its eventfd,
#                   wake_fd=the front-end's eventfd, bell_fd=the front-end's doorbell)
#
# One eventfd and one doorbell (``Doorbell``) serve all of a front-end's workers, so a poll
# or an asyncio reader waits for all of them.  A worker writes the eventfd only while the
# doorbell rings (someone waits asleep), and the front-end writes a worker's only while that
# worker sleeps; a message that comes while the other end spins or works costs no system
# call at either end.

cdef extern from "<sys/mman.h>" nogil:
    int memfd_create(const char *name, unsigned int flags)
    int MFD_CLOEXEC
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    void *MAP_FAILED
    int PROT_READ
    int PROT_WRITE
    int MAP_SHARED

cdef extern from "<unistd.h>" nogil:
    ssize_t pwrite(int fd, const void *buf, size_t count, long offset)
    int ftruncate(int fd, long length)
    int usleep(unsigned int usec)

cdef extern from "lane.h" nogil:
    ctypedef struct fi_lane_header:
        unsigned long long capacity
        unsigned int ring
        unsigned int sleeping
    ctypedef struct fi_lane:
        fi_lane_header *h
        char *data
        int fd
        int ring
        unsigned long long seen
    int FI_LANE_HEADER
    int fi_lane_map(fi_lane *lane, int fd, int reader)
    void fi_lane_unmap_data(fi_lane *lane)
    void fi_lane_unmap_header(fi_lane *lane)
    int fi_lane_publish(fi_lane *lane, const char *data, unsigned long long length, int wake_fd,
                        const unsigned int *wake_flag)
    void fi_bell_raise(unsigned int *bell)
    void fi_bell_lower(unsigned int *bell)
    int fi_lane_ready(fi_lane *lane)
    unsigned long long fi_lane_peek(fi_lane *lane, int *err)
    void fi_lane_consume(fi_lane *lane)
    int fi_lane_spin(fi_lane *lane, unsigned long long spin_ns)
    int fi_lane_sleep(fi_lane *lane, int wake_fd)
    int fi_lane_taken(fi_lane *lane)
    int fi_ring_publish(fi_lane *lane, const char *data, unsigned long long length,
                        int wake_fd, const unsigned int *wake_flag)
    unsigned long long fi_ring_peek(fi_lane *lane, int *err)
    void fi_ring_take(fi_lane *lane, char *out, unsigned long long length)
    unsigned long long fi_now_ns()
    void fi_pause()
    int FI_SPIN_ALONE_NS

cdef extern from "<sched.h>" nogil:
    int sched_yield()

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memset

LANE_CAPACITY = 64 * 1024  # a lane's first data area; larger messages grow it
# A writer waiting for room in a ring spins (yielding the CPU) this long, then naps.
DEF _ROOM_SPIN_NS = 2_000_000


def lane_file(unsigned long long capacity=LANE_CAPACITY, bint ring=False):
    """A new lane: a memfd (close-on-exec) holding an initialised header and ``capacity``
    bytes of data area; a ring (``lane.h``) if ``ring``, whose capacity is a power of two."""
    cdef fi_lane_header header
    if ring and (capacity < 16 or capacity & (capacity - 1)):
        raise ValueError(f"a ring's capacity is a power of two, not {capacity}")
    cdef int fd = memfd_create(b"fastinvoke-lane", MFD_CLOEXEC)
    if fd < 0:
        raise os_error(errno, "memfd_create")
    memset(&header, 0, sizeof(header))
    header.capacity = capacity
    header.ring = ring
    if (ftruncate(fd, FI_LANE_HEADER + capacity) != 0
            or pwrite(fd, &header, sizeof(header), 0) != sizeof(header)):
        err = errno
        close(fd)
        raise os_error(err, "lane_file")
    return fd


cdef class Link:
    """One end of a worker's link: receive from ``in``, send to ``out``.

    Owns the fds it is given (``close`` closes them).  The front-end calls it under its
    dispatcher's lock, except ``spin_any`` and ``ready_links``, which only read inbound
    headers (mappings of their own that stay until the Link is freed, so a ``close``
    meanwhile is harmless).
    """

    cdef fi_lane inbound
    cdef fi_lane outbound
    cdef int sleep_fd
    cdef int wake_fd
    cdef unsigned int *wake_flag  # the peer's: its lane's ``sleeping``, or its doorbell
    cdef unsigned int *bell       # the doorbell's mapping, when this end was given one
    cdef bint closed
    cdef readonly object worker
    # The worker's spin after a reply: adapted to how soon requests have been following
    # replies, never above max_spin_ns, so an idle worker sleeps at once.
    cdef public long long max_spin_ns
    cdef readonly long long spin_ns
    cdef long long sent_ns

    def __cinit__(self, int in_fd, int out_fd, int sleep_fd, int wake_fd, worker=None,
                  long long max_spin_ns=0, int bell_fd=-1):
        cdef int err = 0
        memset(&self.inbound, 0, sizeof(fi_lane))
        memset(&self.outbound, 0, sizeof(fi_lane))
        self.inbound.fd = in_fd
        self.outbound.fd = out_fd
        self.sleep_fd = sleep_fd
        self.wake_fd = wake_fd
        self.worker = worker
        self.max_spin_ns = max_spin_ns
        self.closed = False
        self.bell = NULL
        if bell_fd >= 0:
            self.bell = _map_bell(bell_fd)
            if self.bell == NULL:
                err = errno
            close(bell_fd)  # the mapping keeps the doorbell
        if err == 0:
            err = fi_lane_map(&self.inbound, in_fd, 1)
        if err == 0:
            err = fi_lane_map(&self.outbound, out_fd, 0)
        if err:
            self.close()
            raise os_error(err, "Link: mmap")
        self.wake_flag = self.bell if self.bell != NULL else &self.outbound.h.sleeping

    def __dealloc__(self):
        self.close()
        fi_lane_unmap_header(&self.inbound)
        fi_lane_unmap_header(&self.outbound)
        if self.bell != NULL:
            munmap(self.bell, FI_LANE_HEADER)

    def close(self):
        """Unmap the data areas and close the fds (idempotent)."""
        if self.closed:
            return
        self.closed = True
        fi_lane_unmap_data(&self.inbound)
        fi_lane_unmap_data(&self.outbound)
        for fd in (self.inbound.fd, self.outbound.fd, self.sleep_fd, self.wake_fd):
            if fd >= 0:
                close(fd)

    cpdef send(self, bytes data):
        """Publish ``data`` to the other end (waking it if it sleeps)."""
        cdef int err
        if self.closed:
            raise OSError(EBADF, "send on a closed link")
        if self.outbound.ring:
            err = self._append(data)
        else:
            err = fi_lane_publish(&self.outbound, PyBytes_AS_STRING(data),
                                  PyBytes_GET_SIZE(data), self.wake_fd, self.wake_flag)
        if err:
            raise os_error(err, "Link.send")
        if self.max_spin_ns:  # only a spinning end adapts to when the answer follows
            self.sent_ns = fi_now_ns()

    cdef int _append(self, bytes data):
        """Append ``data`` to the outbound ring, waiting (without the GIL) while it has no
        room: spin, yielding the CPU, then nap, so a reader that stopped costs no CPU."""
        cdef const char *bytes_ = PyBytes_AS_STRING(data)
        cdef unsigned long long length = PyBytes_GET_SIZE(data), started = 0
        cdef int err = fi_ring_publish(&self.outbound, bytes_, length, self.wake_fd,
                                       self.wake_flag)
        if err != EAGAIN:
            return err
        with nogil:
            started = fi_now_ns()
            while err == EAGAIN:
                if fi_now_ns() - started < _ROOM_SPIN_NS:
                    sched_yield()
                else:
                    usleep(100)
                err = fi_ring_publish(&self.outbound, bytes_, length, self.wake_fd,
                                      self.wake_flag)
        return err

    cpdef object take(self):
        """The waiting message as bytes, or None when none waits."""
        cdef int err = 0
        cdef unsigned long long length
        if self.closed or not fi_lane_ready(&self.inbound):
            return None
        if self.inbound.ring:
            length = fi_ring_peek(&self.inbound, &err)
            if err:
                raise os_error(err, "Link.take: mremap")
            data = PyBytes_FromStringAndSize(NULL, length)
            fi_ring_take(&self.inbound, PyBytes_AS_STRING(data), length)
            return data
        length = fi_lane_peek(&self.inbound, &err)
        if err:
            raise os_error(err, "Link.take: mremap")
        data = PyBytes_FromStringAndSize(self.inbound.data, length)
        fi_lane_consume(&self.inbound)
        return data

    cpdef bytes recv(self, int spin_mode=1, bint hold_gil=False):
        """Wait for the next message: spin, then sleep on the eventfd.  ``spin_mode`` 1:
        spin for as long as messages have lately been coming after a send; 2 (the other
        end said more are coming): as long as ``max_spin_ns``; 0 (it said every core is
        taken): not at all.  The wait releases the GIL, unless ``hold_gil``: then this
        process's other Python threads cannot run until the message has come."""
        cdef int err = 0
        cdef unsigned long long now
        cdef long long gap
        cdef fi_lane *lane = &self.inbound
        cdef unsigned long long spin = (self.spin_ns if spin_mode == 1 else
                                        self.max_spin_ns if spin_mode == 2 else 0)
        cdef int sleep_fd = self.sleep_fd
        if self.closed:
            raise OSError(EBADF, "recv on a closed link")
        if hold_gil:
            if not fi_lane_spin(lane, spin):
                err = fi_lane_sleep(lane, sleep_fd)
            now = fi_now_ns()
        else:
            with nogil:
                if not fi_lane_spin(lane, spin):
                    err = fi_lane_sleep(lane, sleep_fd)
                now = fi_now_ns()
        if err:
            raise os_error(err, "Link.recv")
        gap = now - self.sent_ns
        self.spin_ns = min(gap + (gap >> 2), self.max_spin_ns) if gap < self.max_spin_ns else 0
        return self.take()

    cpdef bint readable(self):
        """Whether a message waits."""
        return not self.closed and fi_lane_ready(&self.inbound)

    cpdef bint delivered(self):
        """Whether the other end has taken the last message sent."""
        return fi_lane_taken(&self.outbound)


cdef unsigned int *_map_bell(int fd):
    cdef void *mapped = mmap(NULL, FI_LANE_HEADER, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    return NULL if mapped == MAP_FAILED else <unsigned int *>mapped


cdef class Doorbell:
    """The front-end's doorbell: how many of its waiters are asleep (or watching) on its
    eventfd.  Workers write the eventfd after a reply only while it is above 0."""

    cdef unsigned int *word
    cdef readonly int fd

    def __cinit__(self):
        self.word = NULL
        self.fd = memfd_create(b"fastinvoke-doorbell", MFD_CLOEXEC)
        if self.fd < 0:
            raise os_error(errno, "memfd_create")
        if ftruncate(self.fd, FI_LANE_HEADER) != 0:
            err = errno
            close(self.fd)
            raise os_error(err, "Doorbell: ftruncate")
        self.word = _map_bell(self.fd)
        if self.word == NULL:
            err = errno
            close(self.fd)
            raise os_error(err, "Doorbell: mmap")

    def __dealloc__(self):
        if self.word != NULL:
            munmap(self.word, FI_LANE_HEADER)
        self.close()

    def close(self):
        """Close its memfd (idempotent); the mapping stays until the Doorbell is freed, so a
        thread still waiting meanwhile touches valid memory."""
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    cpdef raise_(self):
        """One more waiter: call before the last look at the lanes, then sleep."""
        fi_bell_raise(self.word)

    cpdef lower(self):
        """One waiter fewer (it is awake)."""
        fi_bell_lower(self.word)


def spin_any(list links, long long spin_ns):
    """Spin up to ``spin_ns`` (without the GIL) until one of ``links`` has a message
    waiting; return whether one has.  Only the links' headers are read, which stay mapped
    while a copy of the list holds them (the caller's may change meanwhile)."""
    cdef list held = list(links)
    cdef Py_ssize_t count = len(held), i
    cdef fi_lane **lanes
    cdef unsigned long long deadline, started, now
    cdef int found = 0
    if count == 0 or spin_ns <= 0:
        return False
    lanes = <fi_lane **>PyMem_Malloc(count * sizeof(fi_lane *))
    if lanes == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            lanes[i] = &(<Link>held[i]).inbound
        with nogil:
            started = fi_now_ns()
            deadline = started + spin_ns
            while not found:
                for i in range(count):
                    if fi_lane_ready(lanes[i]):
                        found = 1
                        break
                else:
                    fi_pause()
                    now = fi_now_ns()
                    if now >= deadline:
                        break
                    if now - started >= FI_SPIN_ALONE_NS:
                        sched_yield()
    finally:
        PyMem_Free(lanes)
    return bool(found)


def ready_links(list links):
    """The links of ``links`` that have a message waiting."""
    cdef Link link
    ready = []
    for item in links:
        link = <Link>item
        if not link.closed and fi_lane_ready(&link.inbound):
            ready.append(link)
    return ready
