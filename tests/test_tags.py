"""Tags through boto3 against a real ``fastinvoke serve``: at creation, TagResource,
UntagResource, ListTags, GetFunction's Tags, Lambda's limits, and a SAM template's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import function_resource
from http_server import Server, zip_of

ARN = "arn:aws:lambda:us-east-1:123456789012:function:"
ROLE = "arn:aws:iam::123456789012:role/lambda"


def test_tags_at_creation_and_after(tmp_path: Path) -> None:
    server = Server(tmp_path / "state")
    try:
        client = server.client()
        code = zip_of({"app.py": "def handler(event, context):\n    return 1\n"})
        client.create_function(FunctionName="tagged", Runtime=f"python3.{sys.version_info.minor}",
                               Role=ROLE, Handler="app.handler", Code={"ZipFile": code},
                               Tags={"team": "a", "env": "dev"})
        assert client.list_tags(Resource=ARN + "tagged")["Tags"] == {"team": "a", "env": "dev"}
        client.tag_resource(Resource=ARN + "tagged", Tags={"env": "prod", "cost": "42"})
        client.untag_resource(Resource=ARN + "tagged", TagKeys=["team", "absent"])
        assert client.get_function(FunctionName="tagged")["Tags"] == {"env": "prod", "cost": "42"}
        assert client.invoke(FunctionName="tagged")["Payload"].read() == b"1"
        with pytest.raises(client.exceptions.InvalidParameterValueException, match="aws:"):
            client.tag_resource(Resource=ARN + "tagged", Tags={"aws:reserved": "x"})
        with pytest.raises(client.exceptions.InvalidParameterValueException, match="at most 50"):
            client.tag_resource(Resource=ARN + "tagged",
                                Tags={f"k{n}": "v" for n in range(50)})
        with pytest.raises(client.exceptions.InvalidParameterValueException,
                           match="not a function ARN"):
            client.list_tags(Resource="tagged")
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.list_tags(Resource=ARN + "nobody")
        assert client.list_tags(Resource=ARN + "tagged")["Tags"] == {"env": "prod", "cost": "42"}
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err
    # Tags are kept with the function in its state directory.
    server = Server(tmp_path / "state")
    try:
        client = server.client()
        assert client.list_tags(Resource=ARN + "tagged")["Tags"] == {"env": "prod", "cost": "42"}
        client.close()
    finally:
        server.stop()


def test_a_templates_tags(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text("Resources:\n" + function_resource("Echo", "echo", "echo.handler", """\
      Tags:
        project: demo
"""))
    server = Server(tmp_path / "state", template=template)
    try:
        client = server.client()
        assert client.list_tags(Resource=ARN + "echo")["Tags"] == {
            "lambda:createdBy": "SAM", "project": "demo"}
        client.close()
    finally:
        code, err = server.stop()
    assert code == 0, err
