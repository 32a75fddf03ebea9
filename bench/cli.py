"""CPU of the ``relay`` command: ``--help``, simple commands, and what a worker does before it serves.

    .venv/bin/python bench/cli.py [--runs 5]

Each figure is the median user+system CPU of a fresh process (``resource.getrusage`` of the
children), beside ``python3 -c "import argparse, json"`` as the floor. Issue 13 asked for
``relay --help`` within 10x of that floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PY = sys.executable
RELAY = [PY, "-m", "gateway"]


def cpu_of(command: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "RELAY_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        subprocess.run([*RELAY, "migrate"], env=env, check=True, capture_output=True)
        cases = {
            'python3 -c "import argparse, json"': [PY, "-c", "import argparse, json"],
            "relay --help": [*RELAY, "--help"],
            "relay tenants list": [*RELAY, "tenants", "list"],
            "relay users list --json": [*RELAY, "users", "list", "--json"],
            "relay upstreams list": [*RELAY, "upstreams", "list"],
            "worker import (gateway.app)": [PY, "-c", "import gateway.app"],
            # What a worker does before it answers uvicorn's health check as started (cli/serve.py's timeout).
            "worker app built (create_app())": [PY, "-c", "from gateway.app import create_app; create_app()"],
        }
        floor = 0.0
        print(f"{'command':34} {'CPU s (median)':>15} {'x floor':>8}")
        # Each ``relay`` command loads only its noun's module (gateway/cli/cmd_*.py); the rest is SQLAlchemy,
        # and on the embedded SQLite default, alembic checking the schema is current.
        for name, command in cases.items():
            cpu = statistics.median(cpu_of(command, env) for _ in range(args.runs))
            floor = floor or cpu
            print(f"{name:34} {cpu:15.3f} {cpu / floor:8.1f}")


if __name__ == "__main__":
    main()
