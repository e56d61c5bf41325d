"""API Gateway in front of the warm pools: a template's REST and HTTP API routes."""
