"""What an operation of the Lambda API defined outside ``api`` may use of the API: so
that such modules (``url_operations``, ``mapping_operations``) need not import it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..apigw.url_configs import FunctionUrls
    from ..invoker import Invoker
    from ..sources.mappings import Mappings
    from .functions import Functions
    from .layer_store import LayerStore


class ApiContext(Protocol):
    invoker: Invoker
    functions: Functions
    layers: LayerStore
    urls: FunctionUrls
    mappings: Mappings

    def latest_name(self, function: str | None, query: dict[str, str]) -> str:
        """The function's name, for operations on $LATEST only."""
        ...

    def qualified_name(self, function: str | None, query: dict[str, str],
                       max_length: int = 256) -> tuple[str, str | None]:
        """The function's name and the qualifier given (in its name or ``Qualifier``)."""
        ...

    def unqualified(self, function: str | None, query: dict[str, str], max_length: int = 256,
                    qualified_error: str | None = None) -> str:
        """The function's name, for operations on a function, not on a version or alias."""
        ...
