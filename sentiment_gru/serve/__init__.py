"""The HTTP service: request and response schemas, micro-batching, the FastAPI app and the serve command."""
