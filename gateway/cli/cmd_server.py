"""``relay serve`` and ``relay migrate``."""

from __future__ import annotations

import argparse

from gateway.settings import Settings


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.cli.serve import serve as run_server

    return run_server(settings, host=args.host, port=args.port, workers=args.workers)


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.db.session import migrate as upgrade

    upgrade(settings.database_url)
    print("database is at the newest revision")
    return 0
