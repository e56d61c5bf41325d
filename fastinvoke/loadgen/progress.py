"""A live progress bar on stderr while a run lasts, only when stderr is a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from .recorder import Recorder
from .schedule import Budget

REFRESH_S = 0.25


@contextlib.asynccontextmanager
async def live_progress(recorder: Recorder, budget: Budget) -> AsyncIterator[None]:
    """Redraw from this event loop (rich's own refresh thread would compete with the
    run for the GIL); nothing at all when stderr is piped or redirected."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    by_count = budget.requests is not None
    total = budget.requests if by_count else budget.duration_ns / 1e9
    progress = Progress(
        TextColumn("[bold]bench"), BarColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=Console(stderr=True), auto_refresh=False, transient=True)
    task = progress.add_task("", total=total)

    async def redraw() -> None:
        while True:
            elapsed = recorder.elapsed_s
            done = len(recorder)
            progress.update(task, completed=done if by_count else min(elapsed, total),
                            description=f"{done:,} requests, {recorder.error_count:,} errors, "
                            f"{done / elapsed if elapsed else 0:,.0f}/s")
            progress.refresh()
            await asyncio.sleep(REFRESH_S)

    with progress:
        drawing = asyncio.create_task(redraw())
        try:
            yield
        finally:
            drawing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drawing
