# The few libzmq calls on the invoke path, made directly.  pyzmq stays the owner of every
# socket (it creates, configures and closes them); here we only send, receive and read
# ZMQ_EVENTS on a socket's raw handle (``Socket.underlying``), which skips pyzmq's
# per-call Python work (option lookups, enum conversions, Frame objects) that costs more
# than libzmq itself on a ~50 us round trip.  The symbols come from the libzmq pyzmq has
# already loaded, so both always agree on the library.

cdef extern from "<dlfcn.h>" nogil:
    void *dlopen(const char *filename, int flags)
    void *dlsym(void *handle, const char *symbol)
    char *dlerror()
    int RTLD_NOW
    int RTLD_NOLOAD

ctypedef struct zmq_msg_t:
    unsigned char _[64]

ctypedef int (*_getsockopt_f)(void *s, int option, void *value, size_t *length) noexcept nogil
ctypedef int (*_send_f)(void *s, const void *buf, size_t length, int flags) noexcept nogil
ctypedef int (*_msg_init_f)(zmq_msg_t *msg) noexcept nogil
ctypedef int (*_msg_recv_f)(zmq_msg_t *msg, void *s, int flags) noexcept nogil
ctypedef void *(*_msg_data_f)(zmq_msg_t *msg) noexcept nogil
ctypedef size_t (*_msg_size_f)(zmq_msg_t *msg) noexcept nogil
ctypedef int (*_msg_close_f)(zmq_msg_t *msg) noexcept nogil
ctypedef int (*_errno_f)() noexcept nogil

cdef _getsockopt_f _zmq_getsockopt = NULL
cdef _send_f _zmq_send = NULL
cdef _msg_init_f _zmq_msg_init = NULL
cdef _msg_recv_f _zmq_msg_recv = NULL
cdef _msg_data_f _zmq_msg_data = NULL
cdef _msg_size_f _zmq_msg_size = NULL
cdef _msg_close_f _zmq_msg_close = NULL
cdef _errno_f _zmq_errno = NULL

cdef int _ZMQ_EVENTS = 15
cdef int _ZMQ_POLLIN = 1
cdef int _ZMQ_DONTWAIT = 1


cdef void *_symbol(void *library, const char *name) except NULL:
    cdef void *found = dlsym(library, name)
    if found == NULL:
        raise ImportError(f"libzmq has no symbol {name.decode()}")
    return found


def bind_libzmq(str path):
    """Use the libzmq already loaded from ``path`` (pyzmq's) for the direct calls."""
    global _zmq_getsockopt, _zmq_send, _zmq_msg_init, _zmq_msg_recv
    global _zmq_msg_data, _zmq_msg_size, _zmq_msg_close, _zmq_errno
    cdef void *library = dlopen(path.encode(), RTLD_NOW | RTLD_NOLOAD)
    if library == NULL:
        raise ImportError(f"libzmq is not loaded from {path}")
    _zmq_getsockopt = <_getsockopt_f>_symbol(library, b"zmq_getsockopt")
    _zmq_send = <_send_f>_symbol(library, b"zmq_send")
    _zmq_msg_init = <_msg_init_f>_symbol(library, b"zmq_msg_init")
    _zmq_msg_recv = <_msg_recv_f>_symbol(library, b"zmq_msg_recv")
    _zmq_msg_data = <_msg_data_f>_symbol(library, b"zmq_msg_data")
    _zmq_msg_size = <_msg_size_f>_symbol(library, b"zmq_msg_size")
    _zmq_msg_close = <_msg_close_f>_symbol(library, b"zmq_msg_close")
    _zmq_errno = <_errno_f>_symbol(library, b"zmq_errno")


cdef class Channel:
    """Send, receive and poll one pyzmq socket through libzmq directly.

    Holds a reference to the pyzmq socket so the handle stays valid; the same thread
    rules as the socket's apply (the caller serialises use).  Errors raise
    ``zmq.ZMQError`` with libzmq's errno, as pyzmq would.
    """

    cdef void *handle
    cdef object socket

    def __cinit__(self, socket):
        if _zmq_send == NULL:
            raise RuntimeError("bind_libzmq() was not called")
        self.socket = socket
        self.handle = <void *><size_t>socket.underlying

    cpdef bint readable(self) except -1:
        """Whether a message is waiting (ZMQ_EVENTS & POLLIN; resets the FD's edge)."""
        cdef int events = 0
        cdef size_t length = sizeof(int)
        if _zmq_getsockopt(self.handle, _ZMQ_EVENTS, &events, &length) != 0:
            self._raise()
        return (events & _ZMQ_POLLIN) != 0

    cpdef send(self, bytes data, int flags=0):
        """Send one frame (copied); ``flags`` as zmq_send's (SNDMORE=2, DONTWAIT=1)."""
        cdef int rc
        cdef const char *buffer = PyBytes_AS_STRING(data)
        cdef size_t length = PyBytes_GET_SIZE(data)
        with nogil:
            rc = _zmq_send(self.handle, buffer, length, flags)
        if rc < 0:
            self._raise()

    cpdef bytes recv(self, int flags=0):
        """Receive one frame as bytes; blocks (without the GIL) unless DONTWAIT."""
        cdef zmq_msg_t message
        cdef int rc
        _zmq_msg_init(&message)
        if flags & _ZMQ_DONTWAIT:
            rc = _zmq_msg_recv(&message, self.handle, flags)
        else:
            with nogil:
                rc = _zmq_msg_recv(&message, self.handle, flags)
        if rc < 0:
            _zmq_msg_close(&message)
            self._raise()
        data = PyBytes_FromStringAndSize(<char *>_zmq_msg_data(&message),
                                         _zmq_msg_size(&message))
        _zmq_msg_close(&message)
        return data

    cdef int _raise(self) except -1:
        return _raise_zmq()


cdef int _raise_zmq() except -1:
    import zmq
    raise zmq.ZMQError(_zmq_errno())
