"""The doors (plain ASGI), the Litestar handlers of models, health and management; errors in the caller's dialect."""
