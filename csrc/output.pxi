# A worker's output pipe, drained by the front-end: at each reply (what is left of the
# invocation's output) and whenever the pipe has data while the worker runs (so a worker
# that prints a lot never blocks on a full pipe nor holds its output in its own memory).
# In C because the reply path calls it for every invocation, mostly to find it empty.

DEF _CHUNK = 65536


def drain(int fd):
    """Read all the non-blocking pipe ``fd`` holds now: ``(data, ended)``, ``ended`` once
    every writer has closed it (seen by a read that finds the pipe empty: a short read
    returns without one, having emptied the pipe)."""
    cdef char buf[_CHUNK]
    cdef ssize_t n
    chunks = []
    while True:
        with nogil:
            n = read(fd, buf, _CHUNK)
        if 0 < n < _CHUNK:
            chunks.append(buf[:n])
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), False
        elif n > 0:
            chunks.append(buf[:n])
        elif n == 0:
            return b"".join(chunks), True
        elif errno == EAGAIN:
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), False
        elif errno != EINTR:
            raise os_error(errno, "drain")
