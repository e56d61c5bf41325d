"""Asynchronous (Event) invocations: the durable queue, retries and destinations."""

from .config import EventInvokeConfig

__all__ = ["EventInvokeConfig"]
