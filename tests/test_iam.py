"""Roles enforced on fastinvoke's own API (``serve --iam``): a function's environments get
credentials for its role, its boto3 reaches the server through AWS_ENDPOINT_URL_LAMBDA,
and what those credentials sign is allowed or denied as IAM's policy evaluation decides.
A real server, real workers calling it with boto3, real policy documents."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from helpers import function_resource, wait_until, write_code
from http_server import ROOT, Server

from fastinvoke import FunctionConfig, Invoker
from fastinvoke.iam.credentials import Credentials, Expired
from fastinvoke.iam.lambda_actions import KNOWN_ACTIONS
from fastinvoke.iam.policy import Decision, MalformedPolicyDocumentException, Policy, evaluate

ACCOUNT = "123456789012"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function"
# Calls the function its event names, with the credentials and endpoint its environment
# has, and says what came back.
CALLER = """import json, os
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

def handler(event, context):
    client = boto3.client("lambda", config=Config(retries={"max_attempts": 0}))
    try:
        if event.get("delete"):
            client.delete_function(FunctionName=event["delete"])
            return {"deleted": event["delete"]}
        answer = client.invoke(FunctionName=event["target"], Payload=b"{}")
        return {"answer": json.loads(answer["Payload"].read())}
    except ClientError as error:
        return {"error": error.response["Error"]["Code"],
                "message": error.response["Error"]["Message"],
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}
"""
CREDENTIALS = """import os
def handler(event, context):
    return {name: os.environ.get(name) for name in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_LAMBDA")}
"""
ANSWER = """def handler(event, context):
    return "{name}"
"""


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _policy(*statements: dict[str, Any]) -> Policy:
    return Policy.read("test", _document(*statements), KNOWN_ACTIONS)


# -- IAM's evaluation ---------------------------------------------------------------------

def test_explicit_deny_wins_and_no_allow_denies() -> None:
    allow_all = _policy({"Effect": "Allow", "Action": "lambda:*", "Resource": "*"})
    deny_one = _policy({"Effect": "Deny", "Action": "lambda:InvokeFunction",
                        "Resource": f"{ARN}:secret*"})
    policies = [allow_all, deny_one]
    assert evaluate(policies, "lambda:InvokeFunction", f"{ARN}:public") is Decision.ALLOW
    assert evaluate(policies, "lambda:InvokeFunction", f"{ARN}:secret") \
        is Decision.EXPLICIT_DENY
    assert evaluate(policies, "lambda:InvokeFunction", f"{ARN}:secret:live") \
        is Decision.EXPLICIT_DENY
    assert evaluate([deny_one], "lambda:GetFunction", f"{ARN}:public") \
        is Decision.IMPLICIT_DENY
    assert evaluate([], "lambda:InvokeFunction", f"{ARN}:public") is Decision.IMPLICIT_DENY


def test_wildcards_case_and_negations() -> None:
    policy = _policy({"Effect": "Allow", "Action": ["lambda:Get*", "LAMBDA:list?unctions"],
                      "Resource": f"{ARN}:app-*"})
    assert evaluate([policy], "lambda:GetFunction", f"{ARN}:app-one") is Decision.ALLOW
    assert evaluate([policy], "lambda:ListFunctions", f"{ARN}:app-one") is Decision.ALLOW
    # Resources match with case; an unqualified ARN pattern does not cover a qualified one.
    assert evaluate([policy], "lambda:GetFunction", f"{ARN}:APP-one") is Decision.IMPLICIT_DENY
    exact = _policy({"Effect": "Allow", "Action": "lambda:InvokeFunction",
                     "Resource": f"{ARN}:app"})
    assert evaluate([exact], "lambda:InvokeFunction", f"{ARN}:app:live") \
        is Decision.IMPLICIT_DENY
    negated = _policy({"Effect": "Allow", "NotAction": "lambda:Delete*",
                       "NotResource": f"{ARN}:core"})
    assert evaluate([negated], "lambda:InvokeFunction", f"{ARN}:app") is Decision.ALLOW
    assert evaluate([negated], "lambda:DeleteFunction", f"{ARN}:app") is Decision.IMPLICIT_DENY
    assert evaluate([negated], "lambda:InvokeFunction", f"{ARN}:core") is Decision.IMPLICIT_DENY


def test_a_document_that_does_not_parse_says_where() -> None:
    with pytest.raises(MalformedPolicyDocumentException, match="line 3, column 5"):
        Policy.read("broken", '{"Version": "2012-10-17",\n "Statement": [\n    oops]}')
    with pytest.raises(MalformedPolicyDocumentException, match=r"Statement\[1\]\.Effect"):
        Policy.read("bad", _document(
            {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"},
            {"Effect": "Permit", "Action": "lambda:GetFunction", "Resource": "*"}))
    with pytest.raises(MalformedPolicyDocumentException, match="ARN format"):
        _policy({"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "my-function"})
    with pytest.raises(MalformedPolicyDocumentException, match="principal"):
        _policy({"Effect": "Allow", "Principal": "*", "Action": "lambda:GetFunction",
                 "Resource": "*"})


def test_what_iam_accepts_but_may_not_mean_is_said() -> None:
    policy = _policy(
        {"Effect": "Allow", "Action": "lambda:InvokeFuncton", "Resource": "*"},
        {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}})
    assert any("lambda:InvokeFuncton is not an action" in w for w in policy.warnings)
    assert any("Condition is not evaluated" in w for w in policy.warnings)
    # The conditional Allow is not applied: never more here than on AWS.
    assert evaluate([policy], "lambda:GetFunction", f"{ARN}:f") is Decision.IMPLICIT_DENY


def test_credentials_are_sealed_and_expire() -> None:
    credentials = Credentials(lifetime_s=60)
    role = f"arn:aws:iam::{ACCOUNT}:role/reader"
    issued, expires = credentials.issue(role, "reader-fn", now=1000.0)
    key, token = issued["AWS_ACCESS_KEY_ID"], issued["AWS_SESSION_TOKEN"]
    assert expires == 1060.0 and key.startswith("ASIA") and len(key) == 20
    session = credentials.session(key, token, now=1059.0)
    assert session is not None
    assert session.principal == f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/reader-fn"
    with pytest.raises(Expired):
        credentials.session(key, token, now=1060.0)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert credentials.session(key, forged, now=1000.0) is None
    assert Credentials().session(key, token, now=1000.0) is None  # another server run's


# -- through a real server ----------------------------------------------------------------

@pytest.fixture
def code(tmp_path: Path) -> dict[str, str]:
    return {name: write_code(tmp_path / name, {"app.py": text}) for name, text in (
        ("caller", CALLER), ("credentials", CREDENTIALS),
        ("callee", ANSWER.format(name="callee")), ("other", ANSWER.format(name="other")))}


def _template(path: Path, code: dict[str, str]) -> Path:
    template = path / "template.yaml"
    template.write_text("Resources:\n" + "".join((
        function_resource("Caller", "Caller", "app.handler", code=code["caller"],
                          properties="      Timeout: 30\n      Policies:\n"
                                     "        - LambdaInvokePolicy:\n"
                                     "            FunctionName: !Ref Callee\n"),
        function_resource("Callee", "Callee", "app.handler", code=code["callee"]),
        function_resource("Other", "Other", "app.handler", code=code["other"]),
        function_resource("Creds", "Creds", "app.handler", code=code["credentials"],
                          properties="      Policies:\n        - Statement:\n"
                                     "            - Effect: Allow\n"
                                     "              Action: logs:DescribeMetricFilters\n"
                                     "              Resource: !Sub arn:aws:logs:${AWS::Region}:"
                                     "${AWS::AccountId}:log-group:/aws/lambda/*\n"),
    )))
    return template


def _invoke(client: Any, name: str, event: dict[str, Any]) -> Any:
    answer = client.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return json.loads(answer["Payload"].read())


def test_a_role_invokes_what_it_is_allowed_and_is_denied_the_rest(
        tmp_path: Path, code: dict[str, str]) -> None:
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"operator": [_document(
        {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "lambda:InvokeFunction", "Resource": f"{ARN}:Other*"})]}))
    server = Server(tmp_path / "state", "--iam", "--roles", str(roles),
                    template=_template(tmp_path, code))
    try:
        client = server.client()
        # The template's role: LambdaInvokePolicy on Callee, nothing else.
        assert _invoke(client, "Caller", {"target": "Callee"}) == {"answer": "callee"}
        assert _invoke(client, "Caller", {"target": "Callee:$LATEST"}) == {"answer": "callee"}
        assert _invoke(client, "Caller", {"target": "Other"}) == {
            "error": "AccessDeniedException", "status": 403,
            "message": f"User: arn:aws:sts::{ACCOUNT}:assumed-role/CallerRole/Caller is not "
                       f"authorized to perform: lambda:InvokeFunction on resource: "
                       f"{ARN}:Other because no identity-based policy allows the "
                       "lambda:InvokeFunction action"}
        assert _invoke(client, "Caller", {"delete": "Other"})["error"] == \
            "AccessDeniedException"
        # A function created over the API with a role of the roles file.
        client.create_function(
            FunctionName="Operator", Runtime=f"python3.{sys.version_info.minor}",
            Role=f"arn:aws:iam::{ACCOUNT}:role/operator", Handler="app.handler",
            Code={"ZipFile": _zip(Path(code["caller"], "app.py"))})
        assert _invoke(client, "Operator", {"target": "Callee"}) == {"answer": "callee"}
        denied = _invoke(client, "Operator", {"target": "Other"})
        assert denied["error"] == "AccessDeniedException"
        assert denied["message"].endswith(
            f"on resource: {ARN}:Other with an explicit deny in an identity-based policy")
        # Callers from outside functions keep their open access on loopback.
        assert _invoke(client, "Other", {}) == "other"
        # Credentials this server did not issue are refused.
        forged = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id="ASIAFORGEDFORGED0000",
                              aws_secret_access_key="x" * 40, aws_session_token="forged",
                              config=Config(retries={"max_attempts": 0}))
        with pytest.raises(ClientError) as refused:
            forged.invoke(FunctionName="Other", Payload=b"{}")
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        seen = _invoke(client, "Creds", {})
        assert seen["AWS_ENDPOINT_URL_LAMBDA"] == server.url
        assert seen["AWS_ACCESS_KEY_ID"].startswith("ASIA") and seen["AWS_SESSION_TOKEN"]
        # A signature that does not match the role's secret is refused.
        wrong = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                             aws_access_key_id=seen["AWS_ACCESS_KEY_ID"],
                             aws_secret_access_key="y" * 40,
                             aws_session_token=seen["AWS_SESSION_TOKEN"],
                             config=Config(retries={"max_attempts": 0}))
        with pytest.raises(ClientError) as mismatch:
            wrong.invoke(FunctionName="Other", Payload=b"{}")
        assert mismatch.value.response["Error"]["Code"] == "InvalidSignatureException"
        # CloudWatch Logs' operations: signed for logs, decided on the log group's ARN.
        logs = boto3.client("logs", endpoint_url=server.url, region_name="us-east-1",
                            aws_access_key_id=seen["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=seen["AWS_SECRET_ACCESS_KEY"],
                            aws_session_token=seen["AWS_SESSION_TOKEN"],
                            config=Config(retries={"max_attempts": 0}))
        assert logs.describe_metric_filters(logGroupName="/aws/lambda/Other")[
            "metricFilters"] == []
        with pytest.raises(ClientError) as denied_logs:
            logs.put_metric_filter(
                logGroupName="/aws/lambda/Other", filterName="errors", filterPattern="ERROR",
                metricTransformations=[{"metricName": "Errors", "metricNamespace": "App",
                                        "metricValue": "1"}])
        assert denied_logs.value.response["Error"]["Code"] == "AccessDeniedException"
        assert denied_logs.value.response["Error"]["Message"].endswith(
            "logs:PutMetricFilter on resource: arn:aws:logs:us-east-1:123456789012:log-group:"
            "/aws/lambda/Other because no identity-based policy allows the "
            "logs:PutMetricFilter action")
    finally:
        status, err = server.stop()
    assert status == 0, err


def test_a_malformed_policy_is_refused_before_serving(tmp_path: Path,
                                                      code: dict[str, str]) -> None:
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"broken": [{"Statement": [{"Effect": "Allow",
                                                            "Resource": "*"}]}]}))
    finished = subprocess.run(
        [sys.executable, "-m", "fastinvoke", "serve", "--port", "0", "--no-sandbox",
         "--state-dir", str(tmp_path / "state"), "--iam", "--roles", str(roles)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert finished.returncode == 2
    assert "MalformedPolicyDocument" in finished.stderr
    assert "Statement[0]: must have either Action or NotAction" in finished.stderr


def _zip(handler: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(handler, "app.py")
    return buffer.getvalue()


def test_environments_are_renewed_before_their_credentials_expire(
        code: dict[str, str]) -> None:
    """Each answer's credentials are still valid when it arrives, across renewals."""
    with Invoker(iam=True, credentials_lifetime_s=4, sandbox=False) as invoker:
        invoker.put_role("reader", [_document(
            {"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": "*"})])
        invoker.create_function(FunctionConfig(
            name="creds", handler="app.handler", code=code["credentials"],
            role=f"arn:aws:iam::{ACCOUNT}:role/reader"))
        credentials = invoker.credentials
        assert credentials is not None
        issued: dict[str, str] = {}  # access key id -> its session token, in order

        def renewed() -> bool:
            seen = json.loads(invoker.invoke("creds", {}).payload)
            key = seen["AWS_ACCESS_KEY_ID"]
            session = credentials.session(key, seen["AWS_SESSION_TOKEN"])
            assert session is not None and session.role_arn.endswith("role/reader")
            assert seen["AWS_SECRET_ACCESS_KEY"] == credentials.secret_of(key)
            issued.setdefault(key, seen["AWS_SESSION_TOKEN"])
            return len(issued) >= 2

        wait_until(renewed, timeout=30, interval=0.05)
        first, token = next(iter(issued.items()))
        # The first environment's credentials then expire: refused from then on.
        wait_until(lambda: _expired(credentials, first, token), timeout=30, interval=0.1)


def _expired(credentials: Credentials, key: str, token: str) -> bool:
    try:
        credentials.session(key, token)
    except Expired:
        return True
    return False
