"""Litestar handlers of the doors, health and management; exception handlers answering in the caller's dialect."""
