"""Reading functions from SAM / CloudFormation templates (fastinvoke.sam)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import FUNCTIONS, function_resource
from http_server import Server

from fastinvoke import sam
from fastinvoke.config import LOCAL_PYTHON, local_node
from fastinvoke.errors import InvalidParameterValueException
from fastinvoke.sam import load_template

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEADER = """\
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
"""


# The properties of a function that runs the handler ``write`` puts in src/app.py.
APP = ("CodeUri: src/", "Handler: app.handler", "Runtime: PY")
_APP_LINE = re.compile(r"^( *)APP$", re.MULTILINE)


def write(tmp_path: Path, body: str, name: str = "template.yaml") -> Path:
    """A template in tmp_path with a code directory src/ holding app.py next to it.  In
    ``body``, a line ``APP`` stands for the three properties of ``APP`` (at its indentation),
    and ``PY`` for this machine's Python runtime."""
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return event\n")
    path = tmp_path / name
    text = _APP_LINE.sub(lambda m: "\n".join(m[1] + line for line in APP), textwrap.dedent(body))
    path.write_text(HEADER + text.replace("PY", LOCAL_PYTHON))
    return path


def fn_template(properties: str) -> str:
    """A template body (for ``write``) of one resource, Fn: a function running src/app.py,
    with ``properties`` (YAML, at any indentation) besides ``APP``."""
    head = "\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      APP\n"
    return head + textwrap.indent(textwrap.dedent(properties).strip("\n") + "\n", " " * 6)


def call(code_dir: str, handler: str, event: object) -> object:
    """Import the handler's module from code_dir and call it, as a worker would."""
    module, _, function = handler.rpartition(".")
    spec = importlib.util.spec_from_file_location(module, Path(code_dir) / f"{module}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, function)(event, None)


def one_function(body: str, tmp_path: Path, **kwargs: object) -> tuple[sam.Template, object]:
    template = load_template(write(tmp_path, body), **kwargs)  # type: ignore[arg-type]
    assert len(template.functions) == 1, template
    return template, template.functions[0]


# Globals use python3.11, the Node.js examples nodejs20.x; on another Python or Node.js,
# FunctionConfig warns that they run on this machine's.
@pytest.mark.filterwarnings("ignore:runtime python3.11 runs on:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:runtime nodejs20.x runs on:RuntimeWarning")
def test_examples_template_loads_and_runs() -> None:
    template = load_template(EXAMPLES / "template.yaml")
    assert template.notes == []
    if local_node() is None:  # the Node.js examples are skipped, saying why
        assert set(template.skipped) == {"node-add", "node-log"}
    else:
        assert template.skipped == {}
        node_add, node_log = template.functions[3:]
        assert (node_add.name, node_add.handler, node_add.runtime) == (
            "node-add", "index.handler", "nodejs20.x")
        assert Path(node_log.code) == EXAMPLES / "node-log"
    add, log = template.functions[:2]
    assert (add.name, add.handler, add.runtime) == ("add", "add.lambda_handler", "python3.11")
    assert (add.memory_mb, add.timeout_s) == (128, 3)
    assert Path(add.code) == EXAMPLES / "add" and Path(log.code) == EXAMPLES / "log"
    assert log.handler == "log.lambda_handler"
    assert call(add.code, add.handler, {"value1": 2, "value2": 40}) == 42
    assert [(route.key, route.function) for route in template.routes] == [
        ("GET /hello/{name}", "hello")]


def test_short_tags_become_intrinsic_maps() -> None:
    doc = yaml.load(
        textwrap.dedent("""
            a: !GetAtt Table.Arn
            b: !Ref Param
            c: !Sub "${AWS::Region}-x"
            d: !If [IsProd, !Join ["-", [a, b]], !Ref AWS::NoValue]
            e: !Condition IsProd
            f: !Sub ["${x}", {x: !Select [0, !Split [",", "p,q"]]}]
            g: !GetAtt [Table, StreamArn]
        """),
        Loader=sam._Loader,
    )
    assert doc["a"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert doc["b"] == {"Ref": "Param"}
    assert doc["c"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert doc["d"] == {
        "Fn::If": ["IsProd", {"Fn::Join": ["-", ["a", "b"]]}, {"Ref": "AWS::NoValue"}]
    }
    assert doc["e"] == {"Condition": "IsProd"}
    select = {"Fn::Select": [0, {"Fn::Split": [",", "p,q"]}]}
    assert doc["f"] == {"Fn::Sub": ["${x}", {"x": select}]}
    assert doc["g"] == {"Fn::GetAtt": ["Table", "StreamArn"]}


def test_intrinsics_resolved_locally_and_unresolvable_ones_dropped(tmp_path: Path) -> None:
    body = """
        Resources:
          Table:
            Type: AWS::DynamoDB::Table
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              APP
              Role: !GetAtt FnRole.Arn
              Description: !Join ["-", [!Ref AWS::AccountId, !Ref AWS::Partition]]
              Environment:
                Variables:
                  TABLE_ARN: !GetAtt Table.Arn
                  TABLE: !Ref Table
                  SHARED: !ImportValue shared-bucket
                  WHERE: !Sub "${AWS::Region}/${AWS::StackName}/${!Literal}"
                  WITH_VARS: !Sub ["${a}-${AWS::URLSuffix}", {a: !Select [1, !Split [",", "x,y"]]}]
                  ENCODED: !Base64 hi
    """
    template, fn = one_function(body, tmp_path)
    assert fn.env == {
        "WHERE": "us-east-1/fastinvoke/${Literal}",
        "WITH_VARS": "y-amazonaws.com",
        "ENCODED": "aGk=",
    }
    assert fn.description == "123456789012-aws" and fn.role is None
    notes = "\n".join(template.notes)
    assert "Fn: environment variable TABLE_ARN dropped: Fn::GetAtt Table.Arn" in notes
    assert "Fn: environment variable TABLE dropped: Ref Table is a resource" in notes
    assert "Fn: environment variable SHARED dropped: Fn::ImportValue shared-bucket" in notes
    assert "Fn: Role dropped: Fn::GetAtt FnRole.Arn has no value until" in notes

    _, fn = one_function(body, tmp_path, parameters={"AWS::Region": "eu-west-1"})
    assert fn.env["WHERE"] == "eu-west-1/fastinvoke/${Literal}"


def test_globals_merge_with_sam_rules(tmp_path: Path) -> None:
    template, fn = one_function(
        """
        Parameters:
          Level: {Type: String, Default: debug}
        Globals:
          Function:
            Runtime: PY
            Handler: app.handler
            Timeout: 10
            MemorySize: 256
            Architectures: [arm64]
            Environment:
              Variables: {A: global, B: global, LEVEL: !Ref Level}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Timeout: 20
              Architectures: [x86_64]
              Environment:
                Variables: {B: resource, C: resource, LEVEL: info}
        """,
        tmp_path,
    )
    assert fn.env == {"A": "global", "B": "resource", "C": "resource", "LEVEL": "info"}
    assert (fn.timeout_s, fn.memory_mb, fn.handler) == (20, 256, "app.handler")
    assert fn.architecture == "arm64"  # lists concatenate, globals first
    assert template.notes == []
    assert sam._merge({"L": [1], "M": {"x": 1, "y": 1}, "S": 1}, {"L": [2], "M": {"y": 2}}) == {
        "L": [1, 2],
        "M": {"x": 1, "y": 2},
        "S": 1,
    }
    assert sam._merge({"V": {"Ref": "P"}}, {"V": {"k": 1}}) == {"V": {"k": 1}}  # intrinsic: scalar
    assert sam._merge({"V": [1]}, {"V": "x"}) == {"V": "x"}  # different types: resource wins


def test_globals_key_sam_does_not_allow_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        Globals:
          Function:
            Runtime: PY
            Policies: [AWSLambdaBasicExecutionRole]
        Resources: {}
        """,
    )
    with pytest.raises(InvalidParameterValueException) as info:
        load_template(path)
    assert str(info.value).startswith("'Policies' is not a supported property of 'Function'")


def test_inline_code_becomes_a_runnable_module(tmp_path: Path) -> None:
    body = """
        Resources:
          Doubler:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: doubler
              Handler: index.handler
              Runtime: PY
              InlineCode: |
                def handler(event, context):
                    return event["x"] * 2
          Raw:
            Type: AWS::Lambda::Function
            Properties:
              Handler: main.handler
              Runtime: PY
              MemorySize: 512
              Role: arn:aws:iam::123456789012:role/raw
              Code:
                ZipFile: !Sub |
                  def handler(event, context):
                      return "${AWS::Region}"
    """
    template = load_template(write(tmp_path, body), inline_dir=tmp_path / "inline")
    doubler, raw = template.functions
    assert Path(doubler.code) == tmp_path / "inline" / "doubler"
    assert (Path(doubler.code) / "index.py").is_file()
    assert call(doubler.code, doubler.handler, {"x": 21}) == 42
    assert (raw.name, raw.memory_mb, raw.role) == ("Raw", 512, "arn:aws:iam::123456789012:role/raw")
    assert call(raw.code, raw.handler, {}) == "us-east-1"
    (written,) = [n for n in template.notes if n.startswith("Doubler: InlineCode written to")]
    assert str(tmp_path / "inline" / "doubler" / "index.py") in written
    assert "SAM CLI refuses InlineCode" in written

    default = load_template(write(tmp_path, body))  # a fresh temporary directory
    try:
        assert Path(default.functions[0].code).parent.name.startswith("fastinvoke-inline-")
        assert call(default.functions[0].code, "index.handler", {"x": 1}) == 2
    finally:
        shutil.rmtree(Path(default.functions[0].code).parent)


def test_events_and_other_unused_properties_are_noted(tmp_path: Path) -> None:
    template, fn = one_function(fn_template("""
        Layers: [arn:aws:lambda:us-east-1:123456789012:layer:deps:1]
        Tracing: Active
        DeadLetterQueue: {Type: SQS, TargetArn: arn:aws:sqs:us-east-1:123456789012:dlq}
        Events:
          Hello:
            Type: Api
            Properties: {Path: /hello, Method: get}
          Nightly:
            Type: Schedule
            Properties: {Schedule: rate(1 day)}
          Audit:
            Type: CloudWatchLogs
            Properties: {LogGroupName: audit, FilterPattern: ERROR}
    """), tmp_path)
    assert fn.name == "Fn" and fn.handler == "app.handler"
    events = [n for n in template.notes if "Events" in n]
    assert events == [  # the Api event is a route (test_apigw), Nightly a schedule
        "Fn: Events Audit (CloudWatchLogs) ignored: these events are not wired locally; "
        "invoke the function directly"
    ]
    assert [route.key for route in template.routes] == ["GET /hello"]
    assert [(s.source, s.expression) for s in template.schedules] == [("Fn.Nightly", "rate(1 day)")]
    assert "Fn: layer arn:aws:lambda:us-east-1:123456789012:layer:deps:1 exists only in AWS: " \
        "the function runs without it; give a local copy with --layer " \
        "arn:aws:lambda:us-east-1:123456789012:layer:deps:1=DIR (DIR holding what the layer's " \
        "zip holds: python/, nodejs/...)" in template.notes
    assert any(n.startswith("Fn: Tracing ignored") for n in template.notes)
    assert fn.dead_letter_target == "arn:aws:sqs:us-east-1:123456789012:dlq"
    assert not any("DeadLetterQueue" in n for n in template.notes)


def test_event_invoke_config_and_dead_letters_resolve_to_local_targets(tmp_path: Path) -> None:
    template = load_template(write(tmp_path, """
        Resources:
          Failures:
            Type: AWS::SQS::Queue
            Properties: {QueueName: failures}
          Alerts:
            Type: AWS::SNS::Topic
          Audit:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: PY}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              APP
              DeadLetterQueue: {Type: SNS, TargetArn: !Ref Alerts}
              EventInvokeConfig:
                MaximumRetryAttempts: 1
                MaximumEventAgeInSeconds: 600
                DestinationConfig:
                  OnSuccess: {Type: Lambda, Destination: !GetAtt Audit.Arn}
                  OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}
          Other:
            Type: AWS::Serverless::Function
            Properties:
              APP
              EventInvokeConfig:
                DestinationConfig:
                  OnFailure: {Type: SQS}
        """))
    functions = {f.name: f for f in template.functions}
    assert functions["Fn"].dead_letter_target == "arn:aws:sns:us-east-1:123456789012:Alerts"
    assert template.event_configs == {
        "Fn": {"maximum_retry_attempts": 1, "maximum_event_age_s": 600,
               "on_success": "arn:aws:lambda:us-east-1:123456789012:function:Audit",
               "on_failure": "arn:aws:sqs:us-east-1:123456789012:failures"},
        # SAM creates a queue when OnFailure gives only its Type
        "Other": {"on_failure": "arn:aws:sqs:us-east-1:123456789012:"
                                "OtherEventInvokeConfigOnFailureSqs"},
    }
    assert template.notes == []


def test_functions_that_cannot_run_here_are_skipped(tmp_path: Path) -> None:
    template = load_template(
        write(
            tmp_path,
            """
            Resources:
              InS3:
                Type: AWS::Serverless::Function
                Properties: {CodeUri: s3://bucket/code.zip, Handler: app.handler, Runtime: PY}
              InS3Map:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: {Bucket: bucket, Key: code.zip}
                  Handler: app.handler
                  Runtime: PY
              Node:
                Type: AWS::Serverless::Function
                Properties: {CodeUri: src/, Handler: app.handler, Runtime: nodejs16.x}
              Custom:
                Type: AWS::Serverless::Function
                Properties: {CodeUri: src/, Handler: App::handleRequest, Runtime: java21}
              Image:
                Type: AWS::Serverless::Function
                Properties: {PackageType: Image, ImageUri: repo:latest}
              Bucket:
                Type: AWS::S3::Bucket
              Ok:
                Type: AWS::Serverless::Function
                Properties: {CodeUri: src/, Handler: app.handler, Runtime: PY}
            """,
        )
    )
    assert [f.name for f in template.functions] == ["Ok"]
    assert set(template.skipped) == {"InS3", "InS3Map", "Node", "Custom", "Image"}
    assert template.skipped["InS3"].startswith("CodeUri s3://bucket/code.zip is in S3")
    assert "is in S3" in template.skipped["InS3Map"]
    assert template.skipped["Node"] == "runtime nodejs16.x is not supported by this fastinvoke yet"
    assert template.skipped["Custom"] == "runtime java21 is not supported by this fastinvoke yet"
    assert "PackageType Image" in template.skipped["Image"]


def test_out_of_range_memory_is_refused_not_clamped(tmp_path: Path) -> None:
    """The function is refused (skipped, saying why); the template's others still load."""
    path = write(
        tmp_path,
        """
        Resources:
          Big:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: PY, MemorySize: 20000}
          Small:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: PY}
        """,
    )
    template = load_template(path)
    assert [fn.name for fn in template.functions] == ["Small"]
    assert template.skipped["Big"].startswith("1 validation error detected: Value '20000' at")
    assert "less than or equal to 10240" in template.unloadable["Big"]


def test_a_function_whose_code_is_missing_leaves_the_others_serving(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        Resources:
          Gone:
            Type: AWS::Serverless::Function
            Properties: {FunctionName: gone, CodeUri: nowhere/, Handler: app.handler, Runtime: PY}
          Here:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: PY}
        """,
    )
    template = load_template(path)
    assert [fn.name for fn in template.functions] == ["Here"]
    assert "nowhere" in template.unloadable["gone"]


def test_parameters_defaults_overrides_and_conditions(tmp_path: Path) -> None:
    body = """
        Parameters:
          Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
          Memory: {Type: Number, Default: 256}
          Secret: {Type: String}
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
          IsBig: !And [!Condition IsProd, !Not [!Equals [!Ref Memory, 128]]]
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              FunctionName: !Sub "${Stage}-fn"
              APP
              MemorySize: !Ref Memory
              Timeout: !If [IsProd, 30, !Ref AWS::NoValue]
              Environment:
                Variables:
                  STAGE: !Ref Stage
                  BIG: !If [IsBig, "yes", "no"]
                  SECRET: !Ref Secret
    """
    template, fn = one_function(body, tmp_path)
    assert (fn.name, fn.memory_mb, fn.timeout_s) == ("dev-fn", 256, 3)
    assert fn.env == {"STAGE": "dev", "BIG": "no"}
    assert "Fn: environment variable SECRET dropped: parameter Secret has no Default" in "\n".join(
        template.notes
    )
    assert not any("FunctionName" in n for n in template.notes)

    overrides = {"Stage": "prod", "Memory": "1024", "Secret": "s3cr3t"}
    template, fn = one_function(body, tmp_path, parameters=overrides)
    assert (fn.name, fn.memory_mb, fn.timeout_s) == ("prod-fn", 1024, 30)

    assert fn.env == {"STAGE": "prod", "BIG": "yes", "SECRET": "s3cr3t"}

    # A name that depends on what is known only when deployed: the logical id, noted.
    template, fn = one_function(body.replace("${Stage}-fn", "${Secret}-fn"), tmp_path)
    assert fn.name == "Fn"
    assert any("FunctionName is computed" in n for n in template.notes)


def test_resource_condition_decides_whether_the_function_exists(tmp_path: Path) -> None:
    body = """
        Parameters:
          Stage: {Type: String, Default: dev}
          Regions: {Type: CommaDelimitedList, Default: "us-east-1,eu-west-1"}
        Conditions:
          IsProd: !Equals [!Ref Stage, prod]
        Resources:
          ProdOnly:
            Type: AWS::Serverless::Function
            Condition: IsProd
            Properties:
              APP
              Environment:
                Variables:
                  SECOND_REGION: !Select [1, !Ref Regions]
    """
    template = load_template(write(tmp_path, body))
    assert template.functions == []
    assert template.skipped == {
        "ProdOnly": "its Condition IsProd is false, so the stack would not have it"
    }
    _, fn = one_function(body, tmp_path, parameters={"Stage": "prod"})
    assert fn.env == {"SECOND_REGION": "eu-west-1"}


def test_values_keep_cloudformation_text_form(tmp_path: Path) -> None:
    template, fn = one_function(fn_template("""
        Environment:
          Variables:
            RELEASED: 2024-01-02
            AT: 2024-01-02T03:04:05Z
            ENABLED: true
            DISABLED: false
            COUNT: 3
            RATIO: 0.5
    """), tmp_path)
    assert fn.env == {
        "RELEASED": "2024-01-02",
        "AT": "2024-01-02T03:04:05Z",
        "ENABLED": "true",
        "DISABLED": "false",
        "COUNT": "3",
        "RATIO": "0.5",
    }
    assert template.notes == []


def test_json_template(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n\treturn 1\n")
    doc = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Code": {"ZipFile": {"Fn::Join": ["\n", ["def handler(e, c):", "\treturn 7"]]}},
                    "Handler": "index.handler",
                    "Runtime": LOCAL_PYTHON,
                    "Timeout": 60,
                    "Environment": {"Variables": {"ACCOUNT": {"Ref": "AWS::AccountId"}}},
                },
            }
        },
    }
    path = tmp_path / "template.json"
    path.write_text(json.dumps(doc, indent="\t"))
    template = load_template(path, inline_dir=tmp_path / "inline")
    (fn,) = template.functions
    assert (fn.timeout_s, fn.env) == (60, {"ACCOUNT": "123456789012"})
    assert call(fn.code, fn.handler, {}) == 7


def test_missing_or_broken_template_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InvalidParameterValueException) as info:
        load_template(missing)
    assert f"Template file '{missing}' cannot be read" in str(info.value)
    assert "give the path of your SAM template" in str(info.value)

    broken = tmp_path / "broken.yaml"
    broken.write_text("Resources:\n  Fn: [unclosed\n")
    with pytest.raises(InvalidParameterValueException) as info:
        load_template(broken)
    assert f"Template file '{broken}' is not valid YAML: " in str(info.value)

    empty = tmp_path / "empty.yaml"
    empty.write_text("Description: nothing here\n")
    with pytest.raises(InvalidParameterValueException, match="has no Resources"):
        load_template(empty)


def test_ephemeral_storage_from_globals_resources_and_parameters(tmp_path: Path) -> None:
    template = load_template(write(
        tmp_path,
        """
        Parameters:
          Scratch: {Type: Number, Default: 4096}
        Globals:
          Function:
            Runtime: PY
            Handler: app.handler
            EphemeralStorage: {Size: 1024}
        Resources:
          Inherits:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/}
          Own:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              EphemeralStorage: {Size: !Ref Scratch}
          Plain:
            Type: AWS::Lambda::Function
            Properties:
              Runtime: PY
              Handler: index.handler
              Code: {ZipFile: "def handler(event, context): return 1"}
          PlainSized:
            Type: AWS::Lambda::Function
            Properties:
              Runtime: PY
              Handler: index.handler
              Code: {ZipFile: "def handler(event, context): return 1"}
              EphemeralStorage: {Size: 10240}
        """,
    ), inline_dir=tmp_path / "inline")
    sizes = {fn.name: fn.ephemeral_storage_mb for fn in template.functions}
    # Globals do not apply to AWS::Lambda::Function: Plain has Lambda's default.
    assert sizes == {"Inherits": 1024, "Own": 4096, "Plain": 512, "PlainSized": 10240}
    assert not [note for note in template.notes if "EphemeralStorage" in note]


@pytest.mark.parametrize(("size", "bound"), [
    (10241, "less than or equal to 10240"), (511, "greater than or equal to 512")])
def test_out_of_range_ephemeral_storage_is_refused_not_clamped(tmp_path: Path, size: int,
                                                                 bound: str) -> None:
    path = write(
        tmp_path,
        f"""
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: PY
              EphemeralStorage: {{Size: {size}}}
        """,
    )
    assert load_template(path).skipped["Fn"] == (
        f"1 validation error detected: Value '{size}' at 'ephemeralStorage.size' failed to "
        f"satisfy constraint: Member must have value {bound}")


def test_serve_skips_a_function_that_cannot_load_and_takes_parameter_overrides(
        tmp_path: Path) -> None:
    """One function's missing code stops only that function: the others serve, and its
    invocations say why.  ``--parameter-overrides`` (both of SAM's forms) reach !Sub in
    FunctionName."""
    template = tmp_path / "template.yaml"
    template.write_text(f"""\
Parameters:
  Stage: {{Type: String, Default: dev}}
  Suffix: {{Type: String, Default: a}}
Resources:
  Gone:
    Type: AWS::Serverless::Function
    Properties: {{FunctionName: gone, CodeUri: nowhere/, Handler: app.handler,
                  Runtime: python3.{sys.version_info.minor}}}
{function_resource("Hello", '!Sub "hello-${Stage}-${Suffix}"', "echo.handler")}""")
    server = Server(tmp_path / "state", "--parameter-overrides", "Stage=prod",
                    "ParameterKey=Suffix,ParameterValue=b", template=template)
    try:
        client = server.client()
        answer = client.invoke(FunctionName="hello-prod-b", Payload=b'{"x": 1}')
        assert json.loads(answer["Payload"].read()) == {"x": 1}
        with pytest.raises(client.exceptions.ResourceNotFoundException,
                           match=r"function:gone:\$LATEST \(it could not be loaded: .*nowhere"):
            client.invoke(FunctionName="gone", Payload=b"{}")
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "note: Gone skipped: " in err


def test_a_templates_s3_events_are_read_with_their_bucket_and_rules(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(f"""
Resources:
  Uploads:
    Type: AWS::S3::Bucket
  Named:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: named-logs
      NotificationConfiguration:
        LambdaConfigurations:
          - Event: s3:ObjectRemoved:*
            Function: !GetAtt Fn.Arn
            Filter: {{S3Key: {{Rules: [{{Name: Suffix, Value: .log}}]}}}}
{function_resource("Fn", "fn", "echo.handler", '''      Events:
        Up:
          Type: S3
          Properties:
            Bucket: !Ref Uploads
            Events: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: prefix, Value: in/}]}}
        NotOurs:
          Type: S3
          Properties: {Bucket: some-bucket, Events: s3:ObjectCreated:*}
        Unknown:
          Type: S3
          Properties: {Bucket: !Ref Uploads, Events: [s3:ObjectCreated:Put, s3:Nope]}
        TwoPrefixes:
          Type: S3
          Properties:
            Bucket: !Ref Uploads
            Events: s3:ObjectCreated:*
            Filter: {S3Key: {Rules: [{Name: prefix, Value: a}, {Name: prefix, Value: b}]}}
''', code=FUNCTIONS)}""")
    read = load_template(template, parameters={"AWS::StackName": "Shop"})
    assert [(s.source, s.function, s.bucket, s.events, s.prefix, s.suffix)
            for s in read.s3_subscriptions] == [
        ("Fn.Up", "fn", "shop-uploads", ("s3:ObjectCreated:*",), "in/", ""),
        ("Named.LambdaConfigurations[0]", "fn", "named-logs", ("s3:ObjectRemoved:*",), "",
         ".log")]
    ids = {s.configuration_id for s in read.s3_subscriptions}
    assert len(ids) == 2 and ids == {
        s.configuration_id for s in load_template(template).s3_subscriptions}  # stable
    notes = [note for note in read.notes if note.startswith("Fn: event")]
    assert notes == [
        "Fn: event NotOurs: not subscribed: Bucket must be a Ref to an AWS::S3::Bucket of "
        "this template (as SAM requires)",
        "Fn: event Unknown: not subscribed: 's3:Nope' is not an S3 event type (such as "
        "s3:ObjectCreated:*, s3:ObjectRemoved:Delete)",
        "Fn: event TwoPrefixes: not subscribed: more than one prefix rule in "
        "Filter.S3Key.Rules"]
    assert not any("(S3) ignored" in note for note in read.notes)
