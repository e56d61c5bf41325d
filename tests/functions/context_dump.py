"""Returns what the handler sees: its context object and its environment."""

import os

ENV_NAMES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "AWS_EXECUTION_ENV",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "TZ",
    "MY_SETTING",
    "_X_AMZN_TRACE_ID",
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
)


def handler(event, context):
    client_context = context.client_context
    client = None if client_context is None else client_context.client
    return {
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "memory_limit_type": type(context.memory_limit_in_mb).__name__,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "cognito_identity_id": context.identity.cognito_identity_id,
        "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        "has_client_context": client_context is not None,
        "custom": None if client_context is None else client_context.custom,
        "client_env": None if client_context is None else client_context.env,
        "client": None if client is None else {
            name: getattr(client, name)
            for name in ("installation_id", "app_title", "app_version_name",
                         "app_version_code", "app_package_name")
        },
        "env": {name: os.environ.get(name) for name in ENV_NAMES},
        "cwd": os.getcwd(),
    }
