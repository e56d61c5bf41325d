# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""fastinvoke's mechanisms in Cython: fork and reap, the local hop, the dispatcher's
bookkeeping, the meters.

Policy (when to fork, whom to kill, what to bill) lives in Python; this module only does
the delicate or hot parts of it fast and exactly.  The parts are included in dependency
order (mechanism first, bookkeeping after).
"""

from posix.types cimport pid_t
from includes.linux cimport *
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

include "errors.pxi"
include "procs.pxi"
include "output.pxi"
include "sandbox.pxi"
include "dispatch.pxi"
include "meter.pxi"
include "link.pxi"
include "zmqfast.pxi"
include "marshal.pxi"
