"""``fastinvoke bench``: a load generator for Lambda-style functions.

``targets`` says what is called (embedded, HTTP Invoke API, ZeroMQ), ``schedule`` when
(closed or open loop), ``recorder`` what came back (HDR histograms), ``runner`` ties
them into one run, ``report`` and ``plot`` show it, ``command`` is the CLI's entry.
"""

from .recorder import Failure, Recorder, Summary
from .runner import Plan, run
from .targets import BenchError, make_target

__all__ = ["BenchError", "Failure", "Plan", "Recorder", "Summary", "make_target", "run"]
