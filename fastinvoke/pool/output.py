"""Workers' output, streamed out of their environments.

A worker's stdout and stderr are the write end of a pipe whose read end only the front-end
holds.  What a function prints leaves its environment as it is written: it is never
buffered in the worker (whose memory is the function's, limited and reported as Max
Memory Used) nor written where the function could read another's.  At each reply the
dispatcher takes what is left in the pipe, which is the rest of that invocation's output
(it was written before the reply was published; a worker that begins the next invocation
at once marks where its output starts: ``pool.ahead``); meanwhile a thread drains pipes that
have data, so a worker that prints more than a pipe holds never waits for its reply to
be read.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import threading
import time

from .._core import drain
from ..wire import OUTPUT_MARK
from .records import WorkerRecord

_PIPE_BYTES = 1 << 20  # what a worker may print before the thread must drain its pipe
# The thread's rounds: every reply takes its invocation's output anyway, so the thread
# matters only for a worker that prints much while it runs.  After a round that found at
# least _MUCH in a pipe it rounds again in _ROUND_S (a pipe fills in no less than that);
# otherwise in _QUIET_ROUND_S: what wakes it then is mostly the marks of invocations run
# back to back, and a round as often as each would take the CPU and the GIL from the
# dispatcher for nothing.  A pipe of 64 KB (where a larger one is refused) takes _MUCH
# several times before it is full.
_ROUND_S = 0.001
_QUIET_ROUND_S = 0.02
_MUCH = 8192


class Outputs:
    """The output pipes of one Invoker's workers, and the thread that drains them."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._records: dict[int, WorkerRecord] = {}
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._epoll.register(self._stop_r, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name="fastinvoke-output",
                                        daemon=True)
        self._thread.start()

    def open(self, record: WorkerRecord) -> int:
        """Make ``record``'s pipe; return the write end, for the worker (the caller closes
        its copy once the worker has it)."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(write_end, True)  # the worker waits when the pipe is full
        # Past fs.pipe-max-size for this user it stays at 64 KB, which works too.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        record.output_fd = read_end
        self._records[read_end] = record
        self._epoll.register(read_end, select.EPOLLIN)
        return write_end

    def close(self, record: WorkerRecord) -> None:
        with record.output_lock:
            fd, record.output_fd = record.output_fd, -1
            if fd >= 0:
                self._forget(fd)

    def _forget(self, fd: int) -> None:
        if self._records.pop(fd, None) is not None:
            self._epoll.unregister(fd)
        os.close(fd)

    def _run(self) -> None:
        while True:
            most = 0  # the most one pipe held this round
            for fd, _ in self._epoll.poll():
                if fd == self._stop_r:
                    return
                record = self._records.get(fd)
                if record is None:
                    continue
                with record.output_lock:
                    read, ended = _drain_into(record)
                    if ended and self._records.get(fd) is record:
                        del self._records[fd]  # the worker is gone: nothing more comes
                        self._epoll.unregister(fd)
                most = max(most, read)
            time.sleep(_ROUND_S if most >= _MUCH else _QUIET_ROUND_S)

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in list(self._records):
            self._forget(fd)
        self._epoll.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


def take(record: WorkerRecord, to_mark: bool = False) -> bytes:
    """Everything ``record``'s worker printed and nobody took yet (any thread); with
    ``to_mark``, only what it printed before the next invocation's mark (``wire.
    OUTPUT_MARK``, written before it begins one it was sent ahead): the rest is the next
    one's.  A mark not written yet is the next take's to drop."""
    with record.output_lock:
        _drain_into(record)
        output = record.output
        if not output:  # the usual case: nothing printed since the last take
            if to_mark:
                record.mark_owed = True
            return b""
        data = output[0] if len(output) == 1 else b"".join(output)
        output.clear()
        if record.mark_owed and (at := data.find(OUTPUT_MARK)) >= 0:
            data = data[:at] + data[at + len(OUTPUT_MARK):]
            record.mark_owed = False
        if to_mark:
            at = data.find(OUTPUT_MARK)
            if at < 0:
                record.mark_owed = True
            else:
                if at + len(OUTPUT_MARK) < len(data):
                    output.append(data[at + len(OUTPUT_MARK):])
                data = data[:at]
        return data


def _drain_into(record: WorkerRecord) -> tuple[int, bool]:
    """Move what the pipe holds into ``record.output`` (its lock held): how many bytes,
    and whether the worker's end is closed."""
    if record.output_fd < 0:
        return 0, True
    data, ended = drain(record.output_fd)
    if data:
        record.output.append(data)
    return len(data), ended
