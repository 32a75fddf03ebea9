"""Server-rendered admin UI (Jinja2). The gateway imports nothing from here except in ``gateway.app``."""
