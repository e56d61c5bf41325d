import json


def lambda_handler(event, context):
    """The SAM CLI's python hello-world function."""
    return {
        "statusCode": 200,
        "body": json.dumps({"message": "hello world"}),
    }
