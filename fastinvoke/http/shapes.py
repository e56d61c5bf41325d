"""Response documents of the management operations, shaped as botocore's model and the
real service's answers (docs/lambda-behaviour.md, "Function management API").

Functions are ready when CreateFunction returns, so ``State`` is ``Active`` and
``LastUpdateStatus`` ``Successful`` at once: boto3's waiters (``function_active_v2``,
``function_updated_v2``) succeed on their first poll.
"""

from __future__ import annotations

from typing import Any

from ..config import FunctionConfig
from ..events.config import EventInvokeConfig
from ..invoker import Invoker
from ..versions import Alias
from .code import MAX_UNZIPPED, MAX_ZIPPED
from .functions import FunctionRecord

TOTAL_CODE_SIZE = 80_530_636_800  # Lambda's default storage for an account's packages


def function_configuration(record: FunctionRecord, invoker: Invoker, listing: bool = False,
                           arn_qualifier: str | None = None) -> dict[str, Any]:
    """``FunctionConfiguration``; ``listing`` gives ListFunctions' subset, without the
    state fields.  Its ARN is qualified with ``arn_qualifier``, else with a published
    version's number."""
    config = record.config
    if arn_qualifier is None and config.version != "$LATEST":
        arn_qualifier = config.version
    arn = invoker.function_arn(config.name)
    document: dict[str, Any] = {
        "FunctionName": config.name,
        "FunctionArn": arn if arn_qualifier is None else f"{arn}:{arn_qualifier}",
        "Runtime": config.runtime,
        "Role": config.role or f"arn:aws:iam::{invoker.account_id}:role/fastinvoke",
        "Handler": config.handler,
        "CodeSize": record.code_size,
        "Description": config.description,
        "Timeout": config.timeout_s,
        "MemorySize": config.memory_mb,
        "LastModified": record.last_modified,
        "CodeSha256": record.code_sha256,
        "Version": config.version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": record.revision_id,
        "PackageType": "Zip",
        "Architectures": [config.architecture],
        "EphemeralStorage": {"Size": config.ephemeral_storage_mb},
        "LoggingConfig": logging_config(config),
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
    }
    if config.env:
        document["Environment"] = {"Variables": config.env}
    if config.dead_letter_target:
        document["DeadLetterConfig"] = {"TargetArn": config.dead_letter_target}
    if record.layers:
        document["Layers"] = record.layers
    if not listing:
        document.update(State="Active", LastUpdateStatus="Successful")
    return document


def logging_config(config: FunctionConfig) -> dict[str, str]:
    """``LoggingConfig``: the levels (INFO unless set) with the JSON format only."""
    document = {"LogFormat": config.log_format}
    if config.log_format == "JSON":
        document["ApplicationLogLevel"] = config.application_log_level or "INFO"
        document["SystemLogLevel"] = config.system_log_level or "INFO"
    document["LogGroup"] = config.log_group_name
    return document


def get_function(record: FunctionRecord, invoker: Invoker,
                 qualifier: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "Configuration": function_configuration(record, invoker, arn_qualifier=qualifier),
        "Code": {"RepositoryType": "Local", "Location": f"file://{record.config.code}"},
    }
    if record.config.reserved_concurrency is not None:
        document["Concurrency"] = concurrency(record.config.reserved_concurrency)
    if record.config.tags:
        document["Tags"] = record.config.tags
    return document


def concurrency(reserved: int | None) -> dict[str, Any]:
    return {} if reserved is None else {"ReservedConcurrentExecutions": reserved}


def account_settings(records: list[FunctionRecord], invoker: Invoker) -> dict[str, Any]:
    reserved = sum(record.config.reserved_concurrency or 0 for record in records)
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_SIZE,
            "CodeSizeUnzipped": MAX_UNZIPPED,
            "CodeSizeZipped": MAX_ZIPPED,
            "ConcurrentExecutions": invoker.account_limit,
            "UnreservedConcurrentExecutions": invoker.account_limit - reserved,
        },
        "AccountUsage": {
            "TotalCodeSize": sum(record.code_size for record in records),
            "FunctionCount": len(records),
        },
    }


def alias_configuration(name: str, alias: Alias, invoker: Invoker) -> dict[str, Any]:
    document: dict[str, Any] = {
        "AliasArn": f"{invoker.function_arn(name)}:{alias.name}", "Name": alias.name,
        "FunctionVersion": alias.function_version, "Description": alias.description,
        "RevisionId": alias.revision_id}
    if alias.weights:
        document["RoutingConfig"] = {"AdditionalVersionWeights": alias.weights}
    return document


def event_invoke_config(name: str, qualifier: str | None, config: EventInvokeConfig,
                        invoker: Invoker) -> dict[str, Any]:
    """``FunctionEventInvokeConfig``: the settings that were set; ``LastModified`` in epoch
    seconds, as the service sends it."""
    document: dict[str, Any] = {
        "FunctionArn": f"{invoker.function_arn(name)}:{qualifier or '$LATEST'}",
        "LastModified": config.last_modified}
    if config.maximum_retry_attempts is not None:
        document["MaximumRetryAttempts"] = config.maximum_retry_attempts
    if config.maximum_event_age_s is not None:
        document["MaximumEventAgeInSeconds"] = config.maximum_event_age_s
    document["DestinationConfig"] = {
        key: {} if arn is None else {"Destination": arn}
        for key, arn in (("OnSuccess", config.on_success), ("OnFailure", config.on_failure))}
    return document
