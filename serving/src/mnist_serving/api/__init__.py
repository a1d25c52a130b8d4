"""The HTTP layer: dependencies, schemas, the OpenAPI document and the routes."""
