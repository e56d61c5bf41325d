"""The HTTP front-end: AWS Lambda's REST API (2015-03-31) for boto3 and the AWS CLI."""
