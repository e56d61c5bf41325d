"""Versions and aliases through boto3 against a real ``fastinvoke serve``: PublishVersion,
ListVersionsByFunction, qualified Invoke/GetFunction/DeleteFunction, aliases with weighted
routing, per-version meters, logs and Event settings, Lambda's refusals, and persistence."""

from __future__ import annotations

import base64
import collections
import json
import os
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from helpers import FUNCTIONS, notify_socket, sandbox_layout_problem, wait_until, write_code
from http_server import Server, serving, zip_of

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.errors import ResourceNotFoundException, TooManyRequestsException

ARN = "arn:aws:lambda:us-east-1:123456789012:function:"
ROLE = "arn:aws:iam::123456789012:role/lambda"
RUNTIME = f"python3.{sys.version_info.minor}"


def _code(answer: str) -> bytes:
    return zip_of({"app.py": (
        "import os\n"
        "def handler(event, context):\n"
        f"    print('running {answer}')\n"
        f"    return {{'answer': '{answer}', 'version': context.function_version,\n"
        "            'env': os.environ['AWS_LAMBDA_FUNCTION_VERSION'],\n"
        "            'arn': context.invoked_function_arn}\n")})


def _create(client, name: str, **extra) -> dict:
    return client.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE,
                                  Handler="app.handler", Code={"ZipFile": _code("one")},
                                  **extra)


def _invoke(client, name: str, **kwargs) -> tuple[dict, dict]:
    answer = client.invoke(FunctionName=name, **kwargs)
    return json.loads(answer["Payload"].read()), answer


def test_publish_invoke_and_delete_versions(tmp_path: Path) -> None:
    with serving(tmp_path, template=False) as server:
        client = server.client()
        created = _create(client, "v", Description="first")
        assert created["Version"] == "$LATEST"
        one = client.publish_version(FunctionName="v", Description="release one")
        assert (one["Version"], one["FunctionArn"]) == ("1", ARN + "v:1")
        assert one["CodeSha256"] == created["CodeSha256"]
        assert one["Description"] == "release one"
        # Nothing changed: publishing again answers version 1.
        assert client.publish_version(FunctionName="v")["Version"] == "1"
        # RevisionId and CodeSha256 preconditions.
        with pytest.raises(client.exceptions.PreconditionFailedException):
            client.publish_version(FunctionName="v", RevisionId="stale")
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="different from current CodeSHA256"):
            client.publish_version(FunctionName="v", CodeSha256="AAAA")

        updated = client.update_function_code(FunctionName="v", ZipFile=_code("two"))
        two = client.publish_version(FunctionName="v", CodeSha256=updated["CodeSha256"])
        assert two["Version"] == "2"
        # $LATEST and each version answer with their own code, version and ARN.
        latest, answer = _invoke(client, "v")
        assert latest == {"answer": "two", "version": "$LATEST", "env": "$LATEST",
                          "arn": ARN + "v"}
        assert answer["ExecutedVersion"] == "$LATEST"
        first, answer = _invoke(client, "v", Qualifier="1")
        assert first == {"answer": "one", "version": "1", "env": "1", "arn": ARN + "v:1"}
        assert answer["ExecutedVersion"] == "1"
        assert _invoke(client, "v:2")[0]["answer"] == "two"
        assert _invoke(client, ARN + "v:1")[1]["ExecutedVersion"] == "1"
        with pytest.raises(client.exceptions.ResourceNotFoundException, match="v:7"):
            client.invoke(FunctionName="v", Qualifier="7")
        # The version's log lines name it.
        tail = base64.b64decode(client.invoke(FunctionName="v:1", LogType="Tail")
                                ["LogResult"]).decode()
        assert "Version: 1\n" in tail and "running one" in tail

        listed = client.list_versions_by_function(FunctionName="v")["Versions"]
        assert [v["Version"] for v in listed] == ["$LATEST", "1", "2"]
        assert listed[0]["FunctionArn"] == ARN + "v:$LATEST"
        paged = client.list_versions_by_function(FunctionName="v", MaxItems=2)
        rest = client.list_versions_by_function(FunctionName="v", Marker=paged["NextMarker"])
        assert [v["Version"] for v in paged["Versions"] + rest["Versions"]] == \
            ["$LATEST", "1", "2"]
        every = client.list_functions(FunctionVersion="ALL")["Functions"]
        assert [f["FunctionArn"] for f in every] == [ARN + "v:$LATEST", ARN + "v:1", ARN + "v:2"]
        assert [f["Version"] for f in client.list_functions()["Functions"]] == ["$LATEST"]
        got = client.get_function(FunctionName="v", Qualifier="1")["Configuration"]
        assert (got["Version"], got["FunctionArn"], got["Description"]) == \
            ("1", ARN + "v:1", "release one")
        assert client.get_function_configuration(FunctionName="v:2")["Version"] == "2"

        # Changing $LATEST's configuration leaves the versions as they were.
        client.update_function_configuration(FunctionName="v", Timeout=9)
        assert client.get_function_configuration(FunctionName="v:1")["Timeout"] == 3
        assert client.publish_version(FunctionName="v")["Version"] == "3"

        with pytest.raises(client.exceptions.InvalidParameterValueException, match="LATEST"):
            client.delete_function(FunctionName="v", Qualifier="$LATEST")
        client.delete_function(FunctionName="v", Qualifier="3")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="v:3")
        # A deleted version's number is not used again.
        client.update_function_configuration(FunctionName="v", Timeout=10)
        assert client.publish_version(FunctionName="v")["Version"] == "4"
    # Versions are kept in the state directory, with their code.
    with serving(tmp_path, template=False) as server:
        client = server.client()
        assert [v["Version"] for v in client.list_versions_by_function(
            FunctionName="v")["Versions"]] == ["$LATEST", "1", "2", "4"]
        assert _invoke(client, "v:1")[0]["answer"] == "one"
        client.delete_function(FunctionName="v")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="v:1")
        assert not (tmp_path / "state" / "versions" / "v").exists()


def test_aliases_route_by_weight(tmp_path: Path) -> None:
    with serving(tmp_path, template=False) as server:
        client = server.client()
        _create(client, "a")
        client.publish_version(FunctionName="a")
        client.update_function_code(FunctionName="a", ZipFile=_code("two"), Publish=True)
        alias = client.create_alias(FunctionName="a", Name="live", FunctionVersion="1",
                                    Description="production")
        assert alias["AliasArn"] == ARN + "a:live"
        payload, answer = _invoke(client, "a", Qualifier="live")
        assert (payload["answer"], payload["arn"], answer["ExecutedVersion"]) == \
            ("one", ARN + "a:live", "1")

        # 30 % to version 2: measured over many invocations.
        weighted = client.update_alias(FunctionName="a", Name="live",
                                       RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
                                       RevisionId=alias["RevisionId"])
        assert weighted["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.3}}
        counts = collections.Counter(
            client.invoke(FunctionName="a:live")["ExecutedVersion"] for _ in range(400))
        assert counts.keys() == {"1", "2"}
        assert 0.2 < counts["2"] / 400 < 0.4, counts  # binomial: 6 standard deviations
        with pytest.raises(client.exceptions.PreconditionFailedException):
            client.update_alias(FunctionName="a", Name="live", RevisionId=alias["RevisionId"])

        # Lambda's refusals, leaving nothing half-made.
        errors = client.exceptions
        for kwargs, error, text in [
            ({"Name": "live", "FunctionVersion": "1"}, errors.ResourceConflictException,
             "already exists"),
            ({"Name": "123", "FunctionVersion": "1"}, errors.ClientError, "pattern"),
            ({"Name": "x", "FunctionVersion": "9"}, errors.ResourceNotFoundException, "a:9"),
            ({"Name": "x", "FunctionVersion": "1",
              "RoutingConfig": {"AdditionalVersionWeights": {"2": 1.5}}},
             errors.ClientError, "less than or equal to 1.0"),
            ({"Name": "x", "FunctionVersion": "$LATEST",
              "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}}},
             errors.InvalidParameterValueException, "LATEST is not supported"),
            ({"Name": "x", "FunctionVersion": "1",
              "RoutingConfig": {"AdditionalVersionWeights": {"1": 0.5}}},
             errors.InvalidParameterValueException, "already included"),
        ]:
            with pytest.raises(error, match=text):
                client.create_alias(FunctionName="a", **kwargs)
        assert [a["Name"] for a in client.list_aliases(FunctionName="a")["Aliases"]] == ["live"]

        # A version an alias points to cannot be deleted.
        with pytest.raises(client.exceptions.ResourceConflictException, match=r"\[live\]"):
            client.delete_function(FunctionName="a", Qualifier="2")
        client.create_alias(FunctionName="a", Name="edge", FunctionVersion="$LATEST")
        assert [a["Name"] for a in client.list_aliases(FunctionName="a",
                                                       FunctionVersion="1")["Aliases"]] == \
            ["live"]
        assert client.get_alias(FunctionName="a", Name="edge")["FunctionVersion"] == "$LATEST"
        assert _invoke(client, "a:edge")[1]["ExecutedVersion"] == "$LATEST"
        got = client.get_function_configuration(FunctionName="a", Qualifier="live")
        assert (got["Version"], got["FunctionArn"]) == ("1", ARN + "a:live")
        client.delete_alias(FunctionName="a", Name="live")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_alias(FunctionName="a", Name="live")
        client.delete_function(FunctionName="a", Qualifier="2")  # no alias holds it now
    with serving(tmp_path, template=False) as server:
        client = server.client()
        assert [a["Name"] for a in client.list_aliases(FunctionName="a")["Aliases"]] == ["edge"]


def test_versions_have_their_own_meters_and_event_settings(tmp_path: Path) -> None:
    with serving(tmp_path, template=False) as server:
        client = server.client()
        _create(client, "m", Publish=True)
        for _ in range(3):
            client.invoke(FunctionName="m:1")
        client.invoke(FunctionName="m")
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'fastinvoke_invocations_total{function="m:1"} 3.0' in metrics
        assert 'fastinvoke_invocations_total{function="m"} 1.0' in metrics

        client.put_function_event_invoke_config(FunctionName="m", Qualifier="1",
                                                MaximumRetryAttempts=0)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_function_event_invoke_config(FunctionName="m")
        got = client.get_function_event_invoke_config(FunctionName="m", Qualifier="1")
        assert (got["FunctionArn"], got["MaximumRetryAttempts"]) == (ARN + "m:1", 0)
        listed = client.list_function_event_invoke_configs(FunctionName="m")
        assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [ARN + "m:1"]
        client.create_alias(FunctionName="m", Name="live", FunctionVersion="1")
        client.put_function_event_invoke_config(FunctionName="m", Qualifier="live",
                                                MaximumRetryAttempts=1)
        listed = client.list_function_event_invoke_configs(FunctionName="m")
        assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == \
            [ARN + "m:1", ARN + "m:live"]
        assert client.get_function_event_invoke_config(
            FunctionName="m:live")["MaximumRetryAttempts"] == 1
        with pytest.raises(client.exceptions.ResourceNotFoundException, match="m:gone"):
            client.get_function_event_invoke_config(FunctionName="m", Qualifier="gone")


# -- the embedded API ---------------------------------------------------------------------


def test_a_version_keeps_its_code_in_its_sandbox(tmp_path: Path) -> None:
    problem = sandbox_layout_problem()
    if problem is not None or os.geteuid() != 0:
        pytest.skip(f"the sandbox needs root and a checkout outside /tmp: {problem}")
    code = tmp_path / "code"
    write_code(code, {"app.py": "def handler(event, context):\n    return 'one'\n"})
    with Invoker(tmp_path / "state") as invoker:
        invoker.create_function(FunctionConfig(name="s", handler="app.handler", code=str(code)))
        version = invoker.publish_version("s")
        # An edit in place of $LATEST's files does not reach the version.
        (code / "app.py").write_text("def handler(event, context):\n    return 'two'\n")
        invoker.update_function("s", description="edited")
        assert invoker.call("s") == "two"
        assert invoker.call("s:1") == "one"
        assert invoker.invoke("s", qualifier="1").executed_version == "1"
        assert version.config.code != str(code)
        assert invoker.publish_version("s").config.version == "2"
        assert invoker.meter("s", "1")["invocations"] == 2


def test_reserved_concurrency_covers_every_version() -> None:
    with Invoker(sandbox=False) as invoker, notify_socket() as (sock, path):
        invoker.create_function(FunctionConfig(name="r", handler="sleeper.handler",
                                               code=FUNCTIONS, reserved_concurrency=1,
                                               timeout_s=10))
        invoker.publish_version("r")
        call = threading.Thread(target=invoker.call,
                                args=("r:1", {"seconds": 1.5, "notify": path}))
        call.start()
        sock.recv(64)  # version 1 runs: the function's one execution is taken
        with pytest.raises(TooManyRequestsException):
            invoker.invoke("r", {})
        call.join()
        assert invoker.meter("r")["throttles"] == 1
        assert invoker.call("r", {})["pid"] > 0


def test_event_invocations_of_a_version_and_an_alias(tmp_path: Path) -> None:
    version_sink, alias_sink = tmp_path / "version.jsonl", tmp_path / "alias.jsonl"
    with Invoker(tmp_path / "state", sandbox=False) as invoker:
        invoker.create_function(FunctionConfig(name="e", handler="echo.handler", code=FUNCTIONS))
        invoker.publish_version("e")
        invoker.create_alias("e", "live", "1")
        invoker.event_invoke_config("e", on_success=f"file://{version_sink}", qualifier="1")
        invoker.event_invoke_config("e", on_success=f"file://{alias_sink}", qualifier="live")
        with pytest.raises(ResourceNotFoundException):  # none set on $LATEST
            invoker.get_event_invoke_config("e")
        assert invoker.invoke("e:1", {"n": 1}, invocation_type="Event").status_code == 202
        assert invoker.invoke("e", {"n": 2}, qualifier="live",
                              invocation_type="Event").status_code == 202
        assert invoker.wait_for_events("e", timeout_s=30)  # every lane of the function
        for sink, arn, number in ((version_sink, ARN + "e:1", 1),
                                  (alias_sink, ARN + "e:live", 2)):
            record = json.loads(sink.read_text())
            assert record["requestContext"]["functionArn"] == arn
            assert record["responseContext"]["executedVersion"] == "1"
            assert record["requestPayload"] == {"n": number}
        assert invoker.meter("e", "1")["invocations"] == 2
    # The alias's settings are kept in the state directory; deleting it takes them away.
    with Invoker(tmp_path / "state", sandbox=False) as invoker:
        assert invoker.get_event_invoke_config("e", "live").on_success == f"file://{alias_sink}"
        invoker.delete_alias("e", "live")
        with pytest.raises(ResourceNotFoundException, match="e:live"):
            invoker.get_event_invoke_config("e", "live")


# -- SAM's AutoPublishAlias -----------------------------------------------------------------


def _aliased_template(tmp_path: Path, answer: str) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(
        f"def handler(event, context):\n    return {{'answer': '{answer}'}}\n")
    template = tmp_path / "template.yaml"
    template.write_text(f"""\
Parameters:
  AliasName:
    Type: String
    Default: live
Globals:
  Function:
    Runtime: {RUNTIME}
    AutoPublishAlias: !Ref AliasName
Resources:
  Aliased:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: aliased
      CodeUri: {code}
      Handler: app.handler
      VersionDescription: from the template
      DeploymentPreference:
        Type: AllAtOnce
""")
    return template


def test_auto_publish_alias_follows_the_code(tmp_path: Path) -> None:
    template = _aliased_template(tmp_path, "one")
    for answer, version in (("one", "1"), ("one", "1"), ("two", "2")):
        _aliased_template(tmp_path, answer)
        server = Server(tmp_path / "state", template=template)
        try:
            client = server.client()
            payload, reply = _invoke(client, "aliased:live")
            assert (payload["answer"], reply["ExecutedVersion"]) == (answer, version)
            got = client.get_function_configuration(FunctionName="aliased", Qualifier=version)
            assert got["Description"] == "from the template"
        finally:
            code, err = server.stop()  # its stderr says where the alias points
        assert code == 0, err
        assert f"alias aliased:live -> version {version}" in err
        assert "DeploymentPreference ignored" in err
    # The CLI's invoke publishes and goes through the alias too.
    done = subprocess.run(
        [sys.executable, "-m", "fastinvoke", "invoke", "aliased:live", "--template",
         str(template), "--state-dir", str(tmp_path / "cli-state")],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert '"answer": "two"' in done.stdout


def test_provisioned_concurrency_of_versions_and_aliases(tmp_path: Path) -> None:
    with serving(tmp_path, template=False) as server:
        client = server.client()
        _create(client, "p", Publish=True)
        client.create_alias(FunctionName="p", Name="live", FunctionVersion="1")
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="unpublished"):
            client.put_provisioned_concurrency_config(
                FunctionName="p", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
        put = client.put_provisioned_concurrency_config(
            FunctionName="p", Qualifier="live", ProvisionedConcurrentExecutions=2)
        assert put["RequestedProvisionedConcurrentExecutions"] == 2
        # The environments are made and initialised before any invocation.
        ready = wait_until(lambda: client.get_provisioned_concurrency_config(
            FunctionName="p", Qualifier="live")["Status"] == "READY", timeout=30)
        assert ready
        got = client.get_provisioned_concurrency_config(FunctionName="p", Qualifier="live")
        assert got["AvailableProvisionedConcurrentExecutions"] == 2
        assert client.invoke(FunctionName="p:live")["ExecutedVersion"] == "1"
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as answer:
            assert 'fastinvoke_invocations_total{function="p:1"} 1.0' in answer.read().decode()
        # One version, one configuration: the version itself is refused while the alias has it.
        with pytest.raises(client.exceptions.ResourceConflictException, match="through live"):
            client.put_provisioned_concurrency_config(
                FunctionName="p", Qualifier="1", ProvisionedConcurrentExecutions=1)
        listed = client.list_provisioned_concurrency_configs(FunctionName="p")
        assert [c["FunctionArn"] for c in listed["ProvisionedConcurrencyConfigs"]] == \
            [ARN + "p:live"]
        client.delete_provisioned_concurrency_config(FunctionName="p", Qualifier="live")
        with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
            client.get_provisioned_concurrency_config(FunctionName="p", Qualifier="live")
        client.put_function_concurrency(FunctionName="p", ReservedConcurrentExecutions=1)
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="reservedConcurrentExecution"):
            client.put_provisioned_concurrency_config(
                FunctionName="p", Qualifier="1", ProvisionedConcurrentExecutions=2)
