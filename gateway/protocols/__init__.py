"""Typed wire models of both dialects and the SSE framing. No I/O; imports only ``gateway.domain``."""
