"""What a running server shows of its functions beside the Lambda API, for ``fastinvoke
billing --endpoint`` and ``fastinvoke logs --endpoint``: the bill so far (``GET
/billing``, open as ``/metrics`` is) and a function's log lines (``GET /logs/NAME``)."""

from __future__ import annotations

from urllib.parse import unquote

from ..errors import InvalidParameterValueException, ServiceError
from ..invoker import Invoker
from ..readouts import Billing, LogPage
from .messages import Response, json_response


def billing(invoker: Invoker) -> Response:
    return json_response(Billing(invoker.usage(), sorted(
        config.qualified_name for config in invoker.list_functions(all_versions=True))))


def log_events(invoker: Invoker, path: str, query: dict[str, str]) -> Response:
    """``/logs/NAME?filter=PATTERN&since_ms=N&after=SEQ&limit=N``."""
    name = unquote(path.removeprefix("/logs/"))
    numbers = {}
    for key in ("since_ms", "after", "limit"):
        text = query.get(key)
        if text is not None and not text.isdigit():
            raise InvalidParameterValueException(f"{key} must be a whole number, not {text!r}")
        numbers[key] = None if text is None else int(text)
    try:
        events = invoker.log_events(name, pattern=query.get("filter"),
                                    since_ms=numbers["since_ms"], after_seq=numbers["after"],
                                    limit=numbers["limit"] or 1000)
    except ServiceError:
        raise
    except ValueError as exc:  # an invalid filter pattern
        raise InvalidParameterValueException(str(exc)) from None
    return json_response(LogPage(events))
