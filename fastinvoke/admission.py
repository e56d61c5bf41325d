"""Lambda's concurrency accounting: which invocations may start, and how many more can.

An account has ``account_limit`` concurrent executions (Lambda's default 1,000).  A
function's reserved concurrency is taken out of it for the others, and caps that
function; at least 100 stay unreserved.  Past either limit a synchronous call is
throttled (``TooManyRequestsException``); Event invocations wait in their queue instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .config import FunctionConfig
from .errors import InvalidParameterValueException, TooManyRequestsException, ValidationException
from .pool.budget import MemoryBudget
from .pool.records import FunctionPool, Invocation

ACCOUNT_LIMIT = 1000
UNRESERVED_MINIMUM = 100  # concurrency Lambda keeps for functions without a reservation


class Admission:
    """Concurrency of every function of one Invoker.  ``enter``/``leave``, ``admit`` and
    ``capacity`` run with the dispatcher's lock held."""

    def __init__(self, account_limit: int, max_workers: int | None,
                 budget: MemoryBudget) -> None:
        self.account_limit = account_limit
        self.max_workers = max_workers
        self.budget = budget
        self.reserved_total = 0  # concurrency reserved by functions, out of account_limit
        # Invocations submitted and not complete, of functions without reserved concurrency.
        self.active_unreserved = 0

    def enter(self, pool: FunctionPool) -> None:
        """An invocation of ``pool`` starts counting against its function's concurrency
        (shared by all its versions, as Lambda's reserved concurrency is)."""
        head = pool.head
        head.active += 1
        if head.config.reserved_concurrency is None:
            self.active_unreserved += 1

    def leave(self, pool: FunctionPool) -> None:
        head = pool.head
        head.active -= 1
        if head.config.reserved_concurrency is None:
            self.active_unreserved -= 1

    def admit(self, invocation: Invocation) -> None:
        """Lambda's throttling of a synchronous call: past the function's reserved
        concurrency, or past what the account leaves unreserved."""
        pool = invocation.pool
        if pool.config.memory_mb > self.budget.limit_mb:
            raise TooManyRequestsException("ConcurrentInvocationLimitExceeded",
                                           self.budget.too_big(pool))
        head = pool.head
        reserved = head.config.reserved_concurrency
        if reserved is not None:
            if head.active >= reserved:
                pool.meter.throttled()
                raise TooManyRequestsException(
                    "ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        if self.active_unreserved >= self.account_limit - self.reserved_total:
            pool.meter.throttled()
            raise TooManyRequestsException("ConcurrentInvocationLimitExceeded")

    def capacity(self, pool: FunctionPool) -> int:
        """How many more invocations ``pool`` may run now."""
        head = pool.head
        room = head.max_workers - head.active
        if head.config.reserved_concurrency is None:
            room = min(room, self.account_limit - self.reserved_total - self.active_unreserved)
        return room

    def batch_width(self, pool: FunctionPool, concurrency: int | None) -> Callable[[], int]:
        """How many invocations of a batch may run at once: ``concurrency`` (default one
        per CPU), within what ``pool`` may run when the batch starts (lock held then)."""
        if concurrency is not None and concurrency < 1:
            raise ValidationException(f"concurrency must be at least 1, not {concurrency}")
        wanted = concurrency or os.cpu_count() or 1
        return lambda: max(1, min(wanted, self.capacity(pool)))

    def worker_limit(self, config: FunctionConfig) -> int:
        """Most workers a function may have: its concurrency limit, within ``max_workers``;
        one while it is debugged (so that every invocation meets the debugger)."""
        if config.debug_port:
            return 1
        limit = self.account_limit if config.reserved_concurrency is None \
            else config.reserved_concurrency
        return limit if self.max_workers is None else min(limit, self.max_workers)

    def check_reservation(self, pool: FunctionPool, reserved: int) -> None:
        """Refuse a reservation that leaves the account less than its unreserved minimum."""
        others = self.reserved_total - (pool.config.reserved_concurrency or 0)
        if self.account_limit - others - reserved < UNRESERVED_MINIMUM:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of "
                f"[{UNRESERVED_MINIMUM}].")

    def reserve(self, pool: FunctionPool, reserved: int | None) -> None:
        """Move ``pool``'s reservation to ``reserved`` (its config changes with it, lock
        held): invocations in flight move to the count they will leave."""
        if (pool.config.reserved_concurrency is None) != (reserved is None):
            self.active_unreserved += pool.active if reserved is None else -pool.active
        self.reserved_total += (reserved or 0) - (pool.config.reserved_concurrency or 0)

    def added(self, config: FunctionConfig) -> None:
        self.reserved_total += config.reserved_concurrency or 0

    def removed(self, config: FunctionConfig) -> None:
        self.reserved_total -= config.reserved_concurrency or 0


def check_reserved(reserved: int) -> None:
    """Refuse a reserved concurrency that is not a whole number of executions."""
    if isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0:
        raise ValidationException(
            f"1 validation error detected: Value '{reserved}' at 'reservedConcurrentExecutions' "
            "failed to satisfy constraint: Member must have value greater than or equal to 0")
