"""The HTTP service: its settings, request and response schemas, micro-batching, the FastAPI app and the serve command."""
