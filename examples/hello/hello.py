def lambda_handler(event, context):
    """Behind an HTTP API route (GET /hello/{name}): API Gateway's payload 2.0 event in,
    a plain value out, which the API sends as a 200 JSON response."""
    name = (event.get("pathParameters") or {}).get("name", "world")
    return {"message": f"hello {name}", "route": event.get("routeKey")}
