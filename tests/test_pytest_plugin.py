"""fastinvoke's pytest plugin, run by pytest's own ``pytester`` in a subprocess: the
``fastinvoke`` fixture loads a template once per session, from the option or a marker,
and a failed test's report shows the log lines of its invocations."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import function_resource

pytest_plugins = ["pytester"]


def _template(directory: Path) -> Path:
    template = directory / "template.yaml"
    template.write_text("Resources:\n"
                        + function_resource("Echo", "echo", "echo.handler")
                        + function_resource("Printer", "printer", "printer.handler")
                        + function_resource("Pid", "pid", "pid.handler"))
    return template


def test_the_fixture_runs_a_templates_functions(pytester: pytest.Pytester) -> None:
    template = _template(pytester.path)
    pytester.makepyfile(test_app="""
        import pytest
        from fastinvoke.errors import FunctionError

        def test_echo(fastinvoke):
            assert fastinvoke.call("echo", {"a": 1}) == {"a": 1}

        def test_the_same_warm_invoker(fastinvoke):
            first = fastinvoke.call("pid")
            assert fastinvoke.call("pid") == first  # the same worker, still warm

        def test_failure_shows_the_logs(fastinvoke):
            fastinvoke.invoke("printer", {"message": "only in this test"})
            assert fastinvoke.invoke("echo", {"b": 2}).status_code == 500
    """)
    result = pytester.runpytest_subprocess("--fastinvoke-template", str(template), "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*fastinvoke: log lines of the functions this test invoked*",
        "START RequestId: * Version: $LATEST",
        "only in this test",
        "REPORT RequestId: *",
    ])
    assert result.stdout.str().count("START RequestId:") == 2  # this test's two only


def test_a_marker_names_the_template(pytester: pytest.Pytester) -> None:
    (pytester.path / "app").mkdir()
    _template(pytester.path / "app")
    pytester.makepyfile(**{"app/test_marked": """
        import pytest

        pytestmark = pytest.mark.fastinvoke(template="template.yaml")

        def test_echo(fastinvoke):
            assert fastinvoke.call("echo", "hi") == "hi"
    """})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_without_a_template_the_fixture_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_none="""
        def test_needs_one(fastinvoke):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--fastinvoke-template PATH*"])


def test_the_ini_names_the_template(pytester: pytest.Pytester) -> None:
    _template(pytester.path)
    pytester.makeini("[pytest]\nfastinvoke_template = template.yaml\n")
    pytester.makepyfile(test_ini="""
        def test_echo(fastinvoke):
            assert fastinvoke.call("echo", [1, 2]) == [1, 2]
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
