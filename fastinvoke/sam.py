"""Read Lambda functions from an AWS SAM or CloudFormation template.

Values that exist only in a deployed stack are never guessed: what is read but not used
goes to ``Template.notes``, and functions that cannot run here to ``Template.skipped``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .apigw.routes import Cors, Route
from .apigw.template import is_api_event, read_routes, read_url_config
from .config import ACCOUNT_ID, LOCAL_PYTHON, FunctionConfig, local_node
from .errors import InvalidParameterValueException, ValidationException
from .iam.roles import RoleSpec
from .iam.sam_roles import read_role
from .runtime.launch import runtime_family
from .sources.mappings import Mapping
from .sources.s3 import Subscription
from .sources.schedules import Schedule
from .sources.stream_sources import LATEST_LABEL
from .sources.template import (
    WIRED_TYPES,
    read_s3_subscriptions,
    read_schedules,
    read_sqs_mappings,
    read_stream_mappings,
)
from .versions import check_alias_name

StrPath = str | os.PathLike[str]
_TYPES = SERVERLESS, LAMBDA = "AWS::Serverless::Function", "AWS::Lambda::Function"
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1", "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": "fastinvoke",
    "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
}  # fmt: skip
# The keys SAM accepts in Globals.Function, in SAM's order; SAM rejects any other.
GLOBAL_FUNCTION_KEYS = (
    "Handler", "Runtime", "CodeUri", "DeadLetterQueue", "Description", "MemorySize", "Timeout",
    "VpcConfig", "Environment", "Tags", "PropagateTags", "Tracing", "KmsKeyArn",
    "AutoPublishAlias", "AutoPublishAliasAllProperties", "Layers", "DeploymentPreference",
    "RolePath", "PermissionsBoundary", "ReservedConcurrentExecutions",
    "ProvisionedConcurrencyConfig", "AssumeRolePolicyDocument", "EventInvokeConfig",
    "FileSystemConfigs", "CodeSigningConfigArn", "Architectures", "SnapStart",
    "EphemeralStorage", "FunctionUrlConfig", "RuntimeManagementConfig", "LoggingConfig",
    "RecursiveLoop", "SourceKMSKeyArn", "TenancyConfig", "DurableConfig",
    "CapacityProviderConfig", "FunctionScalingConfig", "PublishToLatestPublished",
    "VersionDeletionPolicy",
)
_NO = "not emulated locally"
# Resources whose ARN means something locally: destinations and dead-letter targets lead
# to JSON-lines files (queues, topics, buses) or to a function.  Type -> (service, the
# property that names it).
_ARN_RESOURCES = {
    "AWS::SQS::Queue": ("sqs", "QueueName"), "AWS::SNS::Topic": ("sns", "TopicName"),
    "AWS::Events::EventBus": ("events", "Name"), "AWS::IAM::Role": ("iam", "RoleName"),
    "AWS::Kinesis::Stream": ("kinesis", "Name"),
    SERVERLESS: ("lambda", "FunctionName"), LAMBDA: ("lambda", "FunctionName"),
}  # fmt: skip
_IGNORED = {  # property (SAM and CloudFormation names) -> why it has no effect here
    "VpcConfig": "there is no VPC locally; the function uses this machine's network",
    "Tracing": _NO, "TracingConfig": _NO, "FileSystemConfigs": _NO, "SnapStart": _NO,
    "DeploymentPreference": "there are no gradual deployments locally: AutoPublishAlias "
                            "points the alias at the new version at once",
    "AutoPublishCodeSha256": "a version is published when the code or configuration changed",
}  # fmt: skip
_SCALARS = {  # property -> FunctionConfig field; absent or dropped keeps the field's default
    "MemorySize": "memory_mb", "Timeout": "timeout_s", "Role": "role",
    "ReservedConcurrentExecutions": "reserved_concurrency", "Description": "description",
}  # fmt: skip
_LOGGING = {  # LoggingConfig's keys -> FunctionConfig fields
    "LogFormat": "log_format", "ApplicationLogLevel": "application_log_level",
    "SystemLogLevel": "system_log_level", "LogGroup": "log_group",
}  # fmt: skip
_SHORT_TAGS = "Ref Sub GetAtt If Join Select Split FindInMap Base64 ImportValue Equals Not And Or"
_SHORT_TAGS += " Condition GetAZs Cidr"
_NO_VALUE = object()  # AWS::NoValue: the property, key or list item is removed
_Loader = type("_Loader", (yaml.SafeLoader,), {})  # + CloudFormation tags, timestamps as text


@dataclass
class Template:
    """Functions read from a template, and what of the template could not be used here."""

    functions: list[FunctionConfig] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # logical id -> why
    unloadable: dict[str, str] = field(default_factory=dict)  # function name -> why
    # Function name -> its EventInvokeConfig (Invoker.event_invoke_config's keywords).
    event_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)  # of its Api and HttpApi events
    # Function name -> its FunctionUrlConfig (auth type, invoke mode, CORS).
    url_configs: dict[str, tuple[str, str, Cors | None]] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)  # Schedule, ScheduleV2 events
    schedule_errors: list[str] = field(default_factory=list)  # those EventBridge would refuse
    sqs_mappings: list[Mapping] = field(default_factory=list)  # of its SQS events
    # Of its S3 events and its buckets' LambdaConfigurations.
    s3_subscriptions: list[Subscription] = field(default_factory=list)
    # Function name -> (its AutoPublishAlias, VersionDescription).
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)
    roles: list[RoleSpec] = field(default_factory=list)  # its functions' (serve --iam)
    stream_mappings: list[Mapping] = field(default_factory=list)  # its DynamoDB, Kinesis events


class _NotLocal(Exception):
    """A value only a deployed stack has, or a function that cannot run here: says which."""


def _short_tag(loader: yaml.SafeLoader, node: Any) -> dict[str, Any]:
    tag, plain = node.tag[1:], {yaml.ScalarNode: "str", yaml.SequenceNode: "seq"}
    untagged = type(node)(f"tag:yaml.org,2002:{plain.get(type(node), 'map')}", node.value)
    value = loader.construct_object(untagged, deep=True)  # as if the tag were not there
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {tag if tag in ("Ref", "Condition") else f"Fn::{tag}": value}


for _tag in _SHORT_TAGS.split():
    _Loader.add_constructor(f"!{_tag}", _short_tag)
# CloudFormation reads `AWSTemplateFormatVersion: 2010-09-09` as text, not as a date.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_scalar)


def _text(value: Any) -> str:
    """A scalar as CloudFormation writes it (booleans lower-case)."""
    if isinstance(value, str | int | float):
        return ("true" if value else "false") if isinstance(value, bool) else str(value)
    raise _NotLocal(f"value {value!r} is not a string")


def _int(value: Any) -> Any:
    """Numbers from parameters arrive as text; anything else is left for validate() to refuse."""
    return int(value) if isinstance(value, str) and re.fullmatch(r"-?\d+", value) else value


def _is_intrinsic(value: Any) -> bool:
    key = next(iter(value)) if isinstance(value, dict) and len(value) == 1 else ""
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def _merge(glob: Any, local: Any) -> Any:
    """SAM's Globals rule: maps merge (resource wins), lists concatenate, else resource wins."""
    if isinstance(glob, list) and isinstance(local, list):
        return glob + local
    if not isinstance(glob, dict) or not isinstance(local, dict):
        return local
    if _is_intrinsic(glob) or _is_intrinsic(local):  # SAM merges intrinsics as scalars
        return local
    return {**glob, **{k: _merge(glob[k], v) if k in glob else v for k, v in local.items()}}


class _Stack:
    """One template's values as far as they are known without deploying it."""

    def __init__(self, doc: dict[str, Any], overrides: dict[str, str], base: Path,
                 inline_root: Path | None) -> None:  # fmt: skip
        self.resources, self.mappings = doc["Resources"], doc.get("Mappings") or {}
        self.conditions, self.declared = doc.get("Conditions") or {}, doc.get("Parameters") or {}
        self.known = {k: overrides.get(k, v) for k, v in PSEUDO_PARAMETERS.items()}
        for name, spec in self.declared.items():
            if name in overrides or "Default" in (spec := spec or {}):
                value, kind = overrides.get(name, spec.get("Default")), str(spec.get("Type", ""))
                is_list = kind == "CommaDelimitedList" or kind.startswith("List<")
                self.known[name] = value.split(",") if is_list and isinstance(value, str) else value
        self.base, self.inline_root, self.notes = base, inline_root, []
        self.layer_dirs: dict[str, str] = {}  # a layer ARN -> the local directory for it
        v, cond = self.value, self._cond
        self._fns = {
            "Ref": self.ref, "Fn::Sub": self._sub, "Fn::Not": lambda a: not cond(a[0]),
            "Fn::Join": lambda a: a[0].join(_text(x) for x in v(a[1])),
            "Fn::Select": lambda a: v(a[1])[int(_text(v(a[0])))],
            "Fn::Split": lambda a: _text(v(a[1])).split(a[0]),
            "Fn::If": lambda a: v(a[1] if self.condition(a[0]) else a[2]),
            "Fn::Base64": lambda a: base64.b64encode(_text(v(a)).encode()).decode(),
            "Fn::FindInMap": lambda a: v(self.mappings[v(a[0])][v(a[1])][v(a[2])]),
            "Fn::Equals": lambda a: _text(v(a[0])) == _text(v(a[1])),
            "Fn::And": lambda a: all(cond(c) for c in a), "Fn::Or": lambda a: any(map(cond, a)),
            "Fn::GetAtt": self._get_att,
        }  # fmt: skip

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in map(self.value, node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        key, arg = next(iter(node.items())) if len(node) == 1 else ("", None)
        shown = f"{key} {'.'.join(map(str, arg)) if isinstance(arg, list) else arg}"
        if key.startswith("Fn::") and key not in self._fns:  # GetAtt, ImportValue, GetAZs, Cidr
            raise _NotLocal(f"{shown} has no value until the stack is deployed")
        if key in self._fns:
            try:
                return self._fns[key](arg)
            except (TypeError, ValueError, IndexError, KeyError, AttributeError) as exc:
                raise _NotLocal(f"{shown} cannot be evaluated ({exc!r})") from None
        out = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not _NO_VALUE}

    def ref(self, name: Any) -> Any:
        if name in self.known or name == "AWS::NoValue":
            return self.known.get(name, _NO_VALUE)
        if name in self.declared:
            raise _NotLocal(f"parameter {name} has no Default; pass it in parameters=")
        kind = (self.resources.get(name) or {}).get("Type")
        if kind == "AWS::SNS::Topic":  # a topic's Ref is its ARN
            return self.arn_of(name)
        if kind in _TYPES:  # a function's Ref is its name
            return self.arn_of(name).rpartition(":")[2]
        where = "a resource that exists only when deployed" if name in self.resources else "unknown"
        raise _NotLocal(f"Ref {name} is {where}")

    def _get_att(self, arg: Any) -> str:
        name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        kind = (self.resources.get(name) or {}).get("Type")
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return self.table_stream_arn(name)
        if attribute != "Arn" or kind not in _ARN_RESOURCES:
            raise _NotLocal(f"Fn::GetAtt {name}.{attribute} has no value until the stack is "
                            "deployed")
        return self.arn_of(name)

    def arn_of(self, lid: str, kind: str | None = None) -> str:
        """The ARN a resource of the template would have (its name, or its logical id)."""
        resource = self.resources.get(lid) or {}
        service, name_key = _ARN_RESOURCES[kind or resource.get("Type")]
        name = (resource.get("Properties") or {}).get(name_key, lid)
        name = name if isinstance(name, str) else lid
        region, account = self.known["AWS::Region"], self.known["AWS::AccountId"]
        if service == "lambda":
            return f"arn:aws:lambda:{region}:{account}:function:{name}"
        if service == "events":
            return f"arn:aws:events:{region}:{account}:event-bus/{name}"
        if service == "iam":
            return f"arn:aws:iam::{account}:role/{name}"
        if service == "kinesis":
            return f"arn:aws:kinesis:{region}:{account}:stream/{name}"
        return f"arn:aws:{service}:{region}:{account}:{name}"

    def table_stream_arn(self, lid: str) -> str:
        """A table's stream: the one the table has when it is read (its label ``latest``,
        looked up at the DynamoDB endpoint by ``sources.stream_sources``)."""
        table = (self.resources[lid].get("Properties") or {}).get("TableName", lid)
        table = table if isinstance(table, str) else lid
        region, account = self.known["AWS::Region"], self.known["AWS::AccountId"]
        return f"arn:aws:dynamodb:{region}:{account}:table/{table}/stream/{LATEST_LABEL}"

    def role_arn(self, lid: str) -> str:
        return self.arn_of(lid, "AWS::IAM::Role")

    def condition(self, name: Any) -> bool:
        if name not in self.conditions:
            raise _NotLocal(f"condition {name} is not defined")
        return self._cond(self.conditions[name])

    def _cond(self, node: Any) -> bool:
        if isinstance(node, dict) and list(node) == ["Condition"]:
            return self.condition(node["Condition"])
        if not isinstance(value := self.value(node), bool):
            raise _NotLocal(f"condition {node!r} is not true or false")
        return value

    def _sub(self, arg: Any) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else arg

        def one(match: re.Match[str]) -> str:
            var = match.group(1)
            if var.startswith("!"):  # ${!Literal} is written as ${Literal}
                return "${" + var[1:] + "}"
            kind = "Ref" if "." not in var else "Fn::GetAtt"  # ${Res.Attr} is a GetAtt
            return _text(self.value(names.get(var, {kind: var})))

        return re.sub(r"\$\{([^}]*)\}", one, text)

    def note(self, lid: str, text: str) -> None:
        self.notes.append(f"{lid}: {text}")

    def get(self, lid: str, props: dict[str, Any], key: str, required: bool = False) -> Any:
        """The property's local value; None when absent or dropped (with a note)."""
        try:
            value = self.value(props[key]) if key in props else None
        except _NotLocal as why:
            if required:  # the function cannot run without it
                raise _NotLocal(f"{key} cannot be resolved locally: {why}") from None
            self.note(lid, f"{key} dropped: {why}; using the default")
            return None
        return None if value is _NO_VALUE else value

    def auto_publish(self, lid: str, name: str, alias: str, props: dict[str, Any],
                     aliases: dict[str, tuple[str, str]]) -> None:
        """Keep the function's AutoPublishAlias (and VersionDescription), if Lambda would
        take it."""
        try:
            check_alias_name(alias)
        except ValidationException as exc:
            self.note(lid, f"AutoPublishAlias ignored: {exc.message}")
            return
        aliases[name] = (alias, _text(self.get(lid, props, "VersionDescription") or ""))

    def function(self, lid: str, kind: str, props: dict[str, Any]) -> FunctionConfig:
        for key in _IGNORED.keys() & {k for k, v in props.items() if v is not None}:
            self.note(lid, f"{key} ignored: {_IGNORED[key]}")
        if isinstance(events := props.get("Events"), dict) and events:
            types = {n: e.get("Type") for n, e in events.items() if isinstance(e, dict)
                     and not is_api_event(e) and e.get("Type") not in WIRED_TYPES}
            shown = ", ".join(f"{n} ({t})" for n, t in types.items())
            if types:
                self.note(lid, f"Events {shown} ignored: these events are not wired locally; "
                          "invoke the function directly")  # fmt: skip
        if props.get("PackageType") == "Image":
            raise _NotLocal("PackageType Image: container images are not supported locally")
        runtime = self.get(lid, props, "Runtime", True) or LOCAL_PYTHON  # none: this machine's
        family = runtime_family(str(runtime))
        if family is None:
            raise _NotLocal(f"runtime {runtime} is not supported by this fastinvoke yet")
        if family == "nodejs" and local_node() is None:
            raise _NotLocal(f"runtime {runtime} needs Node.js: install it so that `node` is on "
                            "the PATH")
        if not isinstance(name := function_name(self, lid, props), str):
            self.note(lid, f"FunctionName is computed at deploy time; named '{lid}' here")
            name = lid
        handler = _text(self.get(lid, props, "Handler", True) or "")
        code, inline = self._code(lid, kind, props)
        config = FunctionConfig(name=name, handler=handler, code=code, runtime=runtime)
        config.env = self._env(lid, props)
        for key, attr in _SCALARS.items():
            if (value := self.get(lid, props, key)) is not None:
                setattr(config, attr, _text(value) if attr == "description" else _int(value))
        if isinstance(pcc := self.get(lid, props, "ProvisionedConcurrencyConfig"), dict):
            config.provisioned = _int(pcc.get("ProvisionedConcurrentExecutions", 0))
        if isinstance(arch := self.get(lid, props, "Architectures"), list) and arch:
            config.architecture = _text(arch[0])
        if isinstance(storage := self.get(lid, props, "EphemeralStorage"), dict) \
                and storage.get("Size") is not None:
            config.ephemeral_storage_mb = _int(storage["Size"])  # validate() checks the range
        config.role = config.role if isinstance(config.role, str) else None
        config.tags = self._tags(lid, kind, props)
        if isinstance(logging := self.get(lid, props, "LoggingConfig"), dict):
            for key, field in _LOGGING.items():
                if logging.get(key) is not None:
                    setattr(config, field, _text(logging[key]))
        config.layers = self._layers(lid, props)
        config.dead_letter_target = self._dead_letter(lid, props)
        try:
            config.validate()
        except (ValidationException, InvalidParameterValueException) as exc:
            raise type(exc)(f"{lid}: {exc.message}", **exc.fields) from exc
        if inline is not None:  # written only once the name and handler are known valid
            config.code = self._write_inline(lid, config.name, config.handler, inline,
                                             runtime_family(config.runtime) or "python")
        return config

    def _layers(self, lid: str, props: dict[str, Any]) -> list[str]:
        """The directories of the function's ``Layers``: a template's LayerVersion with a
        local ``ContentUri``, or an ARN mapped to a directory (``serve --layer ARN=DIR``);
        any other is noted (the function runs without it)."""
        layers = props.get("Layers")
        found: list[str] = []
        for item in layers if isinstance(layers, list) else ():
            ref = item.get("Ref") if isinstance(item, dict) and len(item) == 1 else None
            resource = self.resources.get(ref) if isinstance(ref, str) else None
            if isinstance(resource, dict):
                directory = self._layer_content(lid, ref, resource)
                if directory is not None:
                    found.append(directory)
                continue
            try:
                arn = _text(self.value(item))
            except _NotLocal as why:
                self.note(lid, f"a layer is dropped: {why}")
                continue
            if arn in self.layer_dirs:
                found.append(self.layer_dirs[arn])
            else:
                self.note(lid, f"layer {arn} exists only in AWS: the function runs without it; "
                          f"give a local copy with --layer {arn}=DIR (DIR holding what the "
                          "layer's zip holds: python/, nodejs/...)")
        return found

    def _layer_content(self, lid: str, ref: str, resource: dict[str, Any]) -> str | None:
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            uri = self.get(ref, props, "ContentUri")
            if isinstance(uri, str) and not uri.startswith("s3://"):
                return str(self.base / uri)
        self.note(lid, f"layer {ref} is not an AWS::Serverless::LayerVersion with a local "
                  "ContentUri: the function runs without it")
        return None

    def _tags(self, lid: str, kind: str, props: dict[str, Any]) -> dict[str, str]:
        """SAM's ``Tags`` map (with the ``lambda:createdBy: SAM`` tag SAM adds), or
        CloudFormation's list of ``{Key, Value}``."""
        tags = self.get(lid, props, "Tags")
        if isinstance(tags, list):
            tags = {item.get("Key"): item.get("Value") for item in tags if isinstance(item, dict)}
        found = {_text(key): _text(value) for key, value in (tags or {}).items()
                 if key is not None and value is not None} if isinstance(tags, dict) else {}
        return {"lambda:createdBy": "SAM", **found} if kind == SERVERLESS else found

    def _dead_letter(self, lid: str, props: dict[str, Any]) -> str | None:
        """SAM's DeadLetterQueue {Type, TargetArn} or CloudFormation's DeadLetterConfig."""
        for key in ("DeadLetterQueue", "DeadLetterConfig"):
            if isinstance(target := self.get(lid, props, key), dict) and target.get("TargetArn"):
                return _text(target["TargetArn"])
        return None

    def event_config(self, lid: str, props: dict[str, Any]) -> dict[str, Any] | None:
        """SAM's EventInvokeConfig as ``Invoker.event_invoke_config`` keywords.  A
        destination without an ARN is one SAM would create: a queue or topic named after
        the function (here: its JSON-lines file)."""
        config = self.get(lid, props, "EventInvokeConfig")
        if not isinstance(config, dict):
            return None
        settings: dict[str, Any] = {}
        for key, field_ in (("MaximumRetryAttempts", "maximum_retry_attempts"),
                            ("MaximumEventAgeInSeconds", "maximum_event_age_s")):
            if config.get(key) is not None:
                settings[field_] = _int(config[key])
        destinations = config.get("DestinationConfig") or {}
        for key, field_ in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
            if not isinstance(spec := destinations.get(key), dict):
                continue
            if spec.get("Destination"):
                settings[field_] = _text(spec["Destination"])
            elif (kind := spec.get("Type")) in ("SQS", "SNS"):
                created = f"{lid}EventInvokeConfig{key}{kind.title()}"
                settings[field_] = self.arn_of(
                    created, "AWS::SQS::Queue" if kind == "SQS" else "AWS::SNS::Topic")
            else:
                self.note(lid, f"EventInvokeConfig {key} of Type {kind} needs a Destination; "
                          "ignored")
        return settings or None

    def _code(self, lid: str, kind: str, props: dict[str, Any]) -> tuple[str, str | None]:
        if kind == LAMBDA:
            code = props.get("Code")
            if not isinstance(code, dict) or "ZipFile" not in code:
                raise _NotLocal("Code is not inline (S3 or image); fastinvoke runs local code only")
            inline = self.get(lid, {"Code.ZipFile": code["ZipFile"]}, "Code.ZipFile", True)
        else:
            inline = self.get(lid, props, "InlineCode", True)
        if inline is not None:
            return str(self.base), _text(inline)
        uri = self.get(lid, props, "CodeUri", True) or "."
        if isinstance(uri, dict) or str(uri).startswith("s3://"):
            raise _NotLocal(f"CodeUri {uri} is in S3; point CodeUri at the local source directory")
        return str(self.base / _text(uri)), None  # validate() refuses a missing directory

    def _env(self, lid: str, props: dict[str, Any]) -> dict[str, str]:
        environment = props.get("Environment")
        variables = environment.get("Variables") if isinstance(environment, dict) else None
        if _is_intrinsic(variables):  # computed as a whole: all or nothing
            variables = self.get(lid, {"Environment.Variables": variables}, "Environment.Variables")
        env: dict[str, str] = {}
        for key, raw in (variables if isinstance(variables, dict) else {}).items():
            try:  # one unresolvable variable costs only itself
                if (value := self.value(raw)) is not _NO_VALUE:
                    env[str(key)] = _text(value)
            except _NotLocal as why:
                self.note(lid, f"environment variable {key} dropped: {why}")
        return env

    def _write_inline(self, lid: str, name: str, handler: str, source: str, family: str) -> str:
        if family == "provided":
            raise _NotLocal("InlineCode runs on Python and Node.js runtimes only; a custom "
                            "runtime needs a bootstrap file: use CodeUri")
        # Node.js names the file before the first dot (index.a.b is export a.b of index.js)
        module = handler.partition(".")[0] if family == "nodejs" else handler.rpartition(".")[0]
        if not all(part.isidentifier() for part in module.split(".")):  # no path tricks
            raise _NotLocal(f"handler {handler} is not module.function, so the code has no file")
        if not self.inline_root:  # created only when a template has inline code
            self.inline_root = Path(tempfile.mkdtemp(prefix="fastinvoke-inline-"))
        suffix = ".js" if family == "nodejs" else ".py"
        target = self.inline_root / name / (module.replace(".", "/") + suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
        self.note(lid, f"InlineCode written to {target} (SAM CLI refuses InlineCode for local "
                  "runs; fastinvoke runs it)")  # fmt: skip
        return str(self.inline_root / name)


def load_template(
    path: StrPath, *, inline_dir: StrPath | None = None, parameters: dict[str, str] | None = None,
    layers: dict[str, str] | None = None,
) -> Template:
    """Read a template's functions, in template order.

    ``layers`` maps layer ARNs the template names (layers that exist only in AWS) to local
    directories holding their content.

    ``parameters`` override Parameter defaults and pseudo parameters such as ``AWS::Region``;
    inline code is written under ``inline_dir`` (default: a fresh temporary directory).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise _bad(path, f"cannot be read ({why}); give the path of your SAM template") from None
    try:  # YAML reads JSON too, but not JSON indented with tabs
        json_ = text.lstrip().startswith("{")
        doc = json.loads(text) if json_ else yaml.load(text, Loader=_Loader)  # noqa: S506
    except (ValueError, yaml.YAMLError) as exc:
        raise _bad(path, f"is not valid {'JSON' if json_ else 'YAML'}: {exc}\nFix it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise _bad(path, "has no Resources: add `Resources:` with an AWS::Serverless::Function")
    glob = (doc.get("Globals") or {}).get("Function") or {}
    for key in (k for k in glob if k not in GLOBAL_FUNCTION_KEYS):
        raise InvalidParameterValueException(
            f"'{key}' is not a supported property of 'Function'. Must be one of the "
            f"following values - [{', '.join(GLOBAL_FUNCTION_KEYS)}]"
        )
    stack = _Stack(doc, parameters or {}, path.resolve().parent, inline_dir and Path(inline_dir))
    stack.layer_dirs = dict(layers or {})
    out = Template(notes=stack.notes)
    served: dict[str, tuple[str, dict[str, Any]]] = {}  # logical id -> (name, properties)
    for lid, resource in doc["Resources"].items():
        if (kind := isinstance(resource, dict) and resource.get("Type")) not in _TYPES:
            continue  # not a function
        props = resource.get("Properties") or {}
        merged = _merge(glob, props) if kind == SERVERLESS else props
        try:  # a resource whose Condition is false (or unknown here) may not exist when deployed
            if "Condition" in resource and not stack.condition(cond := resource["Condition"]):
                raise _NotLocal(f"its Condition {cond} is false, so the stack would not have it")
            # Its routes are served even if it cannot run here: they answer 502, naming it.
            name = function_name(stack, lid, merged)
            served[lid] = name if isinstance(name, str) else lid, merged
            config = stack.function(lid, kind, merged)
            role = read_role(stack, doc["Resources"], lid, merged, config.role,
                             region=stack.known["AWS::Region"],
                             account=stack.known["AWS::AccountId"])
            if role is not None:
                config.role = role.arn
                out.roles.append(role)
            out.functions.append(config)
            served[lid] = config.name, merged
            if kind == SERVERLESS and (events := stack.event_config(lid, merged)) is not None:
                out.event_configs[config.name] = events
            if kind == SERVERLESS and (url := read_url_config(stack, lid, merged)) is not None:
                out.url_configs[config.name] = url
            if kind == SERVERLESS and (alias := stack.get(lid, merged, "AutoPublishAlias")):
                stack.auto_publish(lid, config.name, _text(alias), merged, out.aliases)
        except _NotLocal as why:
            out.skipped[lid] = str(why)
        except (ValidationException, InvalidParameterValueException) as why:
            # This function cannot load (its code is missing, a value is out of range...):
            # the others still serve.
            out.skipped[lid] = why.message.removeprefix(f"{lid}: ")
        if lid in out.skipped and lid in served:
            out.unloadable[served[lid][0]] = out.skipped[lid]
    out.routes = read_routes(stack, doc["Resources"], doc.get("Globals") or {}, served)
    out.schedules, out.schedule_errors = read_schedules(
        stack, served, stack.known["AWS::Region"], stack.known["AWS::AccountId"])
    out.sqs_mappings = read_sqs_mappings(stack, served)
    out.stream_mappings = read_stream_mappings(stack, served)
    out.s3_subscriptions = read_s3_subscriptions(stack, doc["Resources"], served,
                                                 str(stack.known["AWS::StackName"]))
    return out


def function_name(stack: _Stack, lid: str, props: dict[str, Any]) -> Any:
    """``FunctionName`` as far as it resolves here (``!Sub hello-${Stage}`` with the
    parameter's default), else what was written; the logical id when absent."""
    if "FunctionName" not in props:
        return lid
    try:
        return stack.value(props["FunctionName"])
    except _NotLocal:
        return props["FunctionName"]


def _bad(path: Path, problem: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(f"Template file '{path}' {problem}.")
