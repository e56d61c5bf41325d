"""One load run: start the target, probe it, warm it up, then load it on a schedule."""

from __future__ import annotations

from dataclasses import dataclass

from .progress import live_progress
from .recorder import SERVICE, Recorder
from .schedule import Budget, closed_loop, open_loop
from .targets import BenchError, Target


@dataclass(frozen=True)
class Plan:
    """``rate`` None: a closed loop of ``concurrency`` callers; else an open loop at
    ``rate`` requests/s with at most ``concurrency`` in flight.  Exactly one of
    ``requests`` and ``duration_s``; ``warmup`` requests run first, unrecorded.

    ``batch`` N > 1: each call is one ``invoke_many`` of N invocations, each counted as a
    request (``requests`` and ``warmup`` are rounded up to whole batches, ``rate`` is in
    invocations/s); ``concurrency`` is then batches in flight."""

    concurrency: int = 1
    rate: float | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup: int = 0
    batch: int = 1

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise BenchError("--concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise BenchError("--rate must be a positive number of requests per second")
        if (self.requests is None) == (self.duration_s is None):
            raise BenchError("give one of --requests N and --duration S")
        if (self.requests is not None and self.requests < 1) or (
                self.duration_s is not None and self.duration_s <= 0):
            raise BenchError("--requests and --duration must be positive")
        if self.warmup < 0:
            raise BenchError("--warmup must be 0 or more")
        if self.batch < 1:
            raise BenchError("--batch must be at least 1")

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    def whole_batches(self, requests: int) -> int:
        """``requests`` rounded up to a multiple of ``batch``."""
        return -(-requests // self.batch) * self.batch


async def run(target: Target, plan: Plan) -> Recorder:
    """The recorded run (the probe and the warm-up are not in it)."""
    await target.start(plan.concurrency)
    batch = plan.batch
    call = target.call if batch == 1 else target.call_batch
    try:
        # A first call alone: a payload or name that can never succeed ends the run
        # here, with the reason, instead of filling a report with errors.
        outcome = await call()
        probe = next((failure for failure in outcome if failure is not None and
                      failure.kind == SERVICE), None) if isinstance(outcome, list) else outcome
        if probe is not None and probe.kind == SERVICE:
            raise BenchError(f"the first call failed: {probe.label}; check the function name, "
                             "--payload and the endpoint")
        if plan.warmup:
            await closed_loop(call, plan.concurrency,
                              Budget(requests=plan.whole_batches(plan.warmup)), Recorder(),
                              batch)
        budget = Budget(None if plan.requests is None else plan.whole_batches(plan.requests),
                        plan.duration_s)
        recorder = Recorder()
        async with live_progress(recorder, budget):
            if plan.rate is None:
                await closed_loop(call, plan.concurrency, budget, recorder, batch)
            else:
                await open_loop(call, plan.rate, plan.concurrency, budget, recorder, batch)
        return recorder
    finally:
        await target.close()
