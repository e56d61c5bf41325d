"""JSON request bodies of the management operations, as botocore's model names their
members (PascalCase).  Members with no local meaning (VpcConfig, KMSKeyArn...) are
accepted and ignored, as a decoder of these Structs ignores unknown keys."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from ..errors import InvalidRequestContentException

T = TypeVar("T")


class Environment(msgspec.Struct, rename="pascal"):
    variables: dict[str, str] = {}


class EphemeralStorage(msgspec.Struct, rename="pascal"):
    size: int


class DeadLetterConfig(msgspec.Struct, rename="pascal"):
    target_arn: str | None = None  # absent or empty: no dead-letter queue


class LoggingConfig(msgspec.Struct, rename="pascal"):
    log_format: str | None = None
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str | None = None


class FunctionCode(msgspec.Struct, rename={"zip_file": "ZipFile", "s3_bucket": "S3Bucket",
                                           "s3_key": "S3Key", "image_uri": "ImageUri"}):
    zip_file: str | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None
    image_uri: str | None = None


class CreateFunction(msgspec.Struct, rename="pascal"):
    function_name: str
    role: str
    code: FunctionCode
    runtime: str | None = None
    handler: str | None = None
    description: str = ""
    timeout: int = 3
    memory_size: int = 128
    environment: Environment | None = None
    architectures: list[str] = msgspec.field(default_factory=lambda: ["x86_64"])
    package_type: str = "Zip"
    ephemeral_storage: EphemeralStorage | None = None
    dead_letter_config: DeadLetterConfig | None = None
    tags: dict[str, str] = {}
    publish: bool = False
    layers: list[str] = []
    logging_config: LoggingConfig | None = None


class UpdateFunctionConfiguration(msgspec.Struct, rename="pascal"):
    role: str | None = None
    handler: str | None = None
    description: str | None = None
    timeout: int | None = None
    memory_size: int | None = None
    environment: Environment | None = None
    runtime: str | None = None
    revision_id: str | None = None
    ephemeral_storage: EphemeralStorage | None = None
    dead_letter_config: DeadLetterConfig | None = None
    layers: list[str] | None = None
    logging_config: LoggingConfig | None = None


class UpdateFunctionCode(msgspec.Struct, rename={"zip_file": "ZipFile", "s3_bucket": "S3Bucket",
                                                 "image_uri": "ImageUri", "dry_run": "DryRun",
                                                 "revision_id": "RevisionId",
                                                 "architectures": "Architectures",
                                                 "publish": "Publish"}):
    zip_file: str | None = None
    s3_bucket: str | None = None
    image_uri: str | None = None
    dry_run: bool = False
    revision_id: str | None = None
    architectures: list[str] | None = None
    publish: bool = False


class PutFunctionConcurrency(msgspec.Struct, rename="pascal"):
    reserved_concurrent_executions: int


class Destination(msgspec.Struct, rename="pascal"):
    destination: str | None = None


class DestinationConfig(msgspec.Struct, rename="pascal"):
    on_success: Destination | None = None
    on_failure: Destination | None = None


class EventInvokeConfig(msgspec.Struct, rename="pascal"):
    maximum_retry_attempts: int | None = None
    maximum_event_age_in_seconds: int | None = None
    destination_config: DestinationConfig | None = None


def decode(body: bytes, kind: type[T]) -> T:
    """``body`` as a ``kind``; a body that is not that JSON object is Lambda's 400."""
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.DecodeError as exc:  # ValidationError included: a wrong member type
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {exc}") from None
