"""The ``relay`` command: set up and run a relay from the shell alone.

Command names and flags are a public interface (scripts and docs depend on them): add, never rename.
"""

from __future__ import annotations

import sys

from gateway.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        from gateway.cli.run import run  # after parsing: --help and usage errors load nothing more
    except KeyboardInterrupt:  # Ctrl-C while the database stack loads: no traceback either
        print("relay: error: interrupted", file=sys.stderr)
        return 130
    return run(args)
