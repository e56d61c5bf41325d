"""fastinvoke's pytest plugin (registered as ``pytest11``): test the functions of a SAM
template through the ``fastinvoke`` fixture.

The template comes from the closest ``@pytest.mark.fastinvoke(template="template.yaml")``
or from ``--fastinvoke-template`` (also the ``fastinvoke_template`` ini option); each
template is loaded into one ``Invoker`` for the whole session, so its functions stay warm
from test to test.  When a test fails, its report shows the log lines (START to REPORT)
of the invocations it made.

    def test_hello(fastinvoke):
        assert fastinvoke.call("HelloWorldFunction", {"name": "you"}) == {"greeting": "hi you"}
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the Invoker is imported when a test first asks for it
    from .invoker import Invoker
    from .result import InvokeResult

# A test's invocations: (the Invoker, the function's name, the request id).
_INVOKED = pytest.StashKey[list[tuple[Any, str, str]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastinvoke")
    group.addoption("--fastinvoke-template", metavar="PATH",
                    help="the SAM template whose functions the fastinvoke fixture runs")
    parser.addini("fastinvoke_template", "the SAM template of the fastinvoke fixture")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fastinvoke(template): the SAM template the fastinvoke fixture loads")


class Functions:
    """What a test gets: ``invoke`` and ``call`` the template's functions (as ``Invoker``'s
    of the same names), ``invoker`` for the rest.  Invocations are remembered for the
    report of a failed test."""

    def __init__(self, invoker: Invoker, invoked: list[tuple[Any, str, str]]) -> None:
        self.invoker = invoker
        self._invoked = invoked

    def invoke(self, function_name: str, event: Any = None, **options: Any) -> InvokeResult:
        result = self.invoker.invoke(function_name, event, **options)
        self._invoked.append((self.invoker, function_name.partition(":")[0],
                              result.request_id))
        return result

    def call(self, function_name: str, event: Any = None) -> Any:
        """The decoded result; a function error raises ``FunctionError``."""
        return self.invoke(function_name, event).value()


@pytest.fixture(scope="session")
def _fastinvoke_invokers() -> Iterator[dict[Path, Invoker]]:
    """One Invoker per template, for the session."""
    invokers: dict[Path, Invoker] = {}
    yield invokers
    for invoker in invokers.values():
        invoker.close()


@pytest.fixture
def fastinvoke(request: pytest.FixtureRequest,
               _fastinvoke_invokers: dict[Path, Invoker]) -> Functions:
    """The functions of the test's SAM template, running in a session-wide Invoker."""
    template = _template_path(request)
    invoker = _fastinvoke_invokers.get(template)
    if invoker is None:
        from .invoker import Invoker
        from .sam import load_template
        from .stack import deploy

        loaded = load_template(template)
        invoker = Invoker()
        try:
            deploy(invoker, loaded)
        except BaseException:
            invoker.close()
            raise
        _fastinvoke_invokers[template] = invoker
    invoked: list[tuple[Any, str, str]] = []
    request.node.stash[_INVOKED] = invoked
    return Functions(invoker, invoked)


def _template_path(request: pytest.FixtureRequest) -> Path:
    """The test's template: a marker's (relative to the test's file), else the option's
    (relative to where pytest runs), else the ini's (relative to the ini file)."""
    config = request.config
    marker = request.node.get_closest_marker("fastinvoke")
    given = None
    if marker is not None:
        given, base = marker.kwargs.get("template", *marker.args[:1]), request.path.parent
    if not given and (given := config.getoption("fastinvoke_template")):
        base = config.invocation_params.dir
    if not given and (given := config.getini("fastinvoke_template")):
        base = config.inipath.parent if config.inipath else config.rootpath
    if not given:
        pytest.fail(
            "the fastinvoke fixture needs a SAM template: pass --fastinvoke-template PATH, "
            "set fastinvoke_template in pytest's ini, or mark the test "
            '@pytest.mark.fastinvoke(template="template.yaml")', pytrace=False)
    return (base / given).resolve()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    invoked = item.stash.get(_INVOKED, None)
    if report.when != "call" or not report.failed or not invoked:
        return
    lines = []
    for invoker, name, request_id in invoked:
        lines += [record.message for record in invoker.logs(name)
                  if record.request_id == request_id]
    report.sections.append(("fastinvoke: log lines of the functions this test invoked",
                            "".join(lines)))
