# The dispatcher's bookkeeping on the hot path: idle workers per function, the table of
# requests in flight, and their deadlines.  No I/O and no locking: the Python dispatcher
# calls it under its own lock.
from heapq import heapify as _heapify, heappop as _heappop, heappush as _heappush


cdef class Dispatcher:
    """Who is idle, what is in flight, and when it must end.

    Invariants: a known worker is either idle (in its function's idle stack) or busy
    with exactly one request (others sent to it ahead are not in flight until it begins
    them: ``hand_over``); a request is in flight exactly while it is in the pending
    table, whose entry names the worker it was sent to, so a reply is accepted only from
    that worker (a late reply from a killed worker never matches another request).  The
    deadline heap may still hold ended requests; they are skipped when they surface.
    Idle stacks are LIFO: the most recently used worker, the warmest, goes first.
    """

    cdef dict _idle            # function -> [worker id], LIFO
    cdef dict _function_of     # worker id -> function
    cdef dict _pending         # request id -> (worker id, entry, deadline_ns)
    cdef dict _busy            # worker id -> request id
    cdef list _heap            # [(deadline_ns, request id)]

    def __cinit__(self):
        self._idle = {}
        self._function_of = {}
        self._pending = {}
        self._busy = {}
        self._heap = []

    def add_worker(self, bytes worker, str function):
        """Register a new worker as idle for ``function``, below the others: it has served
        nothing yet, so it is the coldest (a spare is taken only when no warm one is idle)."""
        self._function_of[worker] = function
        stack = self._idle.get(function)
        if stack is None:
            self._idle[function] = [worker]
        else:
            (<list>stack).insert(0, worker)

    cpdef object pop_idle(self, str function):
        """Take the warmest idle worker of ``function``, or None."""
        stack = self._idle.get(function)
        if stack:
            return (<list>stack).pop()
        return None

    cpdef bint has_idle(self, str function):
        """Whether ``function`` has an idle worker."""
        stack = self._idle.get(function)
        return bool(stack)

    cpdef begin(self, str request_id, bytes worker, long long deadline_ns, object entry):
        """Record that ``request_id`` was sent to ``worker`` and must end by ``deadline_ns``."""
        self._pending[request_id] = (worker, entry, deadline_ns)
        self._busy[worker] = request_id
        heap = self._heap
        if len(heap) > 2 * len(self._pending) + 64:
            # Ended requests stay in the heap until they surface; while one long
            # invocation sits on top, rebuild it now and then so it cannot grow unbounded.
            heap[:] = [(item[2], rid) for rid, item in self._pending.items()]
            _heapify(heap)
        _heappush(heap, (deadline_ns, request_id))

    cpdef object finish(self, str request_id, bytes worker):
        """End ``request_id`` on a reply from ``worker``; the worker becomes idle.

        Returns the request's entry, or None when the request is not in flight on that
        worker (it timed out, its worker was killed, or the reply is forged or late).
        """
        cdef tuple item = self._pending.get(request_id)
        if item is None or item[0] != worker:
            return None
        del self._pending[request_id]
        del self._busy[worker]
        function = self._function_of.get(worker)
        if function is not None:
            stack = self._idle.get(function)
            if stack is None:
                self._idle[function] = [worker]
            else:
                (<list>stack).append(worker)
        return item[1]

    cpdef object hand_over(self, str request_id, bytes worker, str next_id,
                           long long deadline_ns, object entry):
        """End ``request_id`` on a reply from ``worker``, which goes on with ``next_id``
        (sent to it ahead, begun now): ``finish`` then ``begin``, the worker never idle
        between.  Returns the ended request's entry, or None as ``finish`` does (then
        nothing begins)."""
        cdef tuple item = self._pending.get(request_id)
        if item is None or item[0] != worker:
            return None
        del self._pending[request_id]
        self.begin(next_id, worker, deadline_ns, entry)
        return item[1]

    cpdef object drop_worker(self, bytes worker):
        """Forget ``worker`` (it ended or is being killed).

        Returns ``(request_id, entry)`` of the request it had in flight, removed from the
        table, or None when it was idle or unknown.
        """
        function = self._function_of.pop(worker, None)
        if function is not None:
            stack = self._idle.get(function)
            if stack is not None and worker in stack:
                (<list>stack).remove(worker)
        request_id = self._busy.pop(worker, None)
        if request_id is None:
            return None
        item = self._pending.pop(request_id)
        return request_id, item[1]

    def expired(self, long long now_ns):
        """Pop the deadlines that have passed; return ``(request_id, worker, entry)`` for
        each request still in flight (they stay in flight: the caller kills the worker)."""
        out = []
        heap = self._heap
        while heap and (<tuple>heap[0])[0] <= now_ns:
            deadline, request_id = <tuple>_heappop(heap)
            item = self._pending.get(request_id)
            # A request sent again (its first worker ended before taking it) has a later
            # deadline: its first one, still in the heap, is not its deadline any more.
            if item is not None and item[2] == deadline:
                out.append((request_id, item[0], item[1]))
        return out

    cpdef long long next_deadline(self):
        """The earliest deadline of a request still in flight, or -1 when none is."""
        heap = self._heap
        while heap:
            deadline, request_id = heap[0]
            item = self._pending.get(request_id)
            if item is not None and item[2] == deadline:
                return deadline
            _heappop(heap)
        return -1

    cpdef bint is_idle(self, bytes worker):
        """Whether ``worker`` is ready and has nothing in flight."""
        return worker in self._function_of and worker not in self._busy

    def idle_workers(self, str function):
        """The idle workers of ``function``, coldest first."""
        return list(self._idle.get(function, ()))

    def workers(self, str function):
        """Every known worker of ``function``."""
        return [w for w, f in self._function_of.items() if f == function]

    def busy_worker(self, str request_id):
        """The worker ``request_id`` runs on, or None."""
        item = self._pending.get(request_id)
        return None if item is None else item[0]

    @property
    def deadlines(self):
        """How many deadlines the heap holds, ended requests' included (bounded)."""
        return len(self._heap)

    @property
    def in_flight(self):
        """How many requests are in flight."""
        return len(self._pending)
