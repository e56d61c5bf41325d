def lambda_handler(event, context):
    """As aws-samples' apigw-http-api-lambda-python: a plain return value, which an HTTP
    API sends as a 200 JSON response."""
    return {"message": "Hello from Lambda!", "path": event["rawPath"]}
