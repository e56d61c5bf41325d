"""Layers: a function's layers merged at ``/opt`` in Lambda's order (a later layer's
file wins), found where Lambda's Python finds them (``/opt/python``,
``/opt/python/lib/python3.x/site-packages``), unsandboxed and in the sandbox; from a SAM
template's LayerVersion, and an ARN given a local copy with ``--layer ARN=DIR``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MakeFunction, MakeInvoker, document

ROOT = Path(__file__).resolve().parent.parent
MINOR = sys.version_info.minor
HANDLER = """\
import os
import dep
import only_first
import shared


def handler(event, context):
    return {"shared": shared.NAME, "dep": dep.VALUE, "first": only_first.FIRST,
            "file": shared.__file__, "opt": os.path.isdir("/opt/python")}
"""


def write_layers(directory: Path) -> tuple[Path, Path]:
    """Two layers: both have ``shared``; the first ``only_first``, the second a package in
    its site-packages."""
    first, second = directory / "first", directory / "second"
    (first / "python").mkdir(parents=True)
    (first / "python" / "shared.py").write_text('NAME = "first"\n')
    (first / "python" / "only_first.py").write_text("FIRST = 1\n")
    site = second / "python" / "lib" / f"python3.{MINOR}" / "site-packages" / "dep"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("VALUE = 42\n")
    (second / "python" / "shared.py").write_text('NAME = "second"\n')
    return first, second


@pytest.mark.parametrize("sandbox", [False, True], ids=["unsandboxed", "sandboxed"])
def test_layers_merge_in_order_where_python_finds_them(
        make_invoker: MakeInvoker, make_function: MakeFunction, tmp_path: Path,
        sandbox: bool) -> None:
    if sandbox and os.geteuid() != 0:
        pytest.skip("the sandbox's /opt needs root here (the unprivileged mode is tested "
                    "elsewhere)")
    first, second = write_layers(tmp_path)
    invoker = make_invoker(sandbox=sandbox)
    name = make_function("app.handler", invoker=invoker, source=HANDLER,
                         layers=[str(first), str(second)])
    answer = document(invoker.invoke(name, {}))
    assert (answer["shared"], answer["dep"], answer["first"]) == ("second", 42, 1)
    if sandbox:
        assert (answer["file"], answer["opt"]) == ("/opt/python/shared.py", True)
    else:
        # Merged once under the state directory, of links to the layers' files.
        assert answer["file"].startswith(os.path.join(invoker.state_dir, "opt"))
        assert os.stat(answer["file"]).st_ino == os.stat(second / "python" / "shared.py").st_ino


def test_a_function_may_not_have_more_than_five_layers(make_invoker: MakeInvoker,
                                                      make_function: MakeFunction,
                                                      tmp_path: Path) -> None:
    from fastinvoke.errors import InvalidParameterValueException

    with pytest.raises(InvalidParameterValueException, match="more than 5 layers"):
        make_function("app.handler", invoker=make_invoker(), source=HANDLER,
                      layers=[str(tmp_path)] * 6)


def test_a_templates_layer_and_an_arn_given_a_local_copy(tmp_path: Path) -> None:
    first, second = write_layers(tmp_path)
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:deps:7"
    template = tmp_path / "template.yaml"
    template.write_text(f"""\
Resources:
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: {first}
  App:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: app
      Runtime: python3.{MINOR}
      CodeUri: {code}
      Handler: app.handler
      Layers:
        - !Ref Shared
        - {arn}
""")
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "invoke", "app", "--template",
                           str(template), "--layer", f"{arn}={second}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["shared"] == "second"
    # Without the local copy, the function runs without that layer, and it is noted.
    done = subprocess.run([sys.executable, "-m", "fastinvoke", "invoke", "app", "--template",
                           str(template)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert f"note: App: layer {arn} exists only in AWS" in done.stderr
    assert "No module named 'dep'" in done.stdout


@pytest.mark.parametrize("sandbox", [False, True], ids=["unsandboxed", "sandboxed"])
def test_a_nodejs_layers_modules_are_found(make_invoker: MakeInvoker, tmp_path: Path,
                                           sandbox: bool) -> None:
    from fastinvoke import FunctionConfig
    from fastinvoke.config import local_node

    node = local_node()
    if node is None:
        pytest.skip("Node.js is not installed (`node` on the PATH)")
    if sandbox and os.geteuid() != 0:
        pytest.skip("the sandbox's /opt needs root here")
    modules = tmp_path / "layer" / "nodejs" / "node_modules" / "dep"
    modules.mkdir(parents=True)
    (modules / "index.js").write_text("module.exports = { value: 7 };\n")
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.js").write_text('const dep = require("dep");\n'
                                   "exports.handler = async () => ({ dep: dep.value });\n")
    invoker = make_invoker(sandbox=sandbox)
    invoker.create_function(FunctionConfig(name="node-layers", handler="index.handler",
                                           code=str(code), runtime=f"nodejs{node[1]}.x",
                                           layers=[str(tmp_path / "layer")]))
    assert document(invoker.invoke("node-layers", {})) == {"dep": 7}
