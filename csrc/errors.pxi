# errno to OSError in one place, kept out of line: these paths are cold.
import os as _os


cdef object os_error(int err, str what):
    """The OSError subclass Python itself would raise for ``err``, with ``what`` in the message."""
    return OSError(err, f"{what}: {_os.strerror(err)}")
