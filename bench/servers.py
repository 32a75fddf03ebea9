"""uvicorn against granian, for the bare relay and for Relay, measured in the same run.

    .venv/bin/pip install granian   # not a dependency: only this comparison needs it
    .venv/bin/python bench/servers.py [--seconds 5] [--concurrency 50] [--backend postgres] [--rounds 2]

Both servers run one worker with uvloop and no access log; the fake upstream answers at once.
Prints requests/s and the server's CPU per request for JSON and 16-chunk streams through the
OpenAI door (same dialect upstream). Rounds alternate the servers, so drift hits both alike.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from run import CHUNKS, PY, ROOT, body, free_port, load, setup_relay, start, wait_http


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--backend", default="postgres", choices=("embedded", "postgres"))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    try:
        import granian  # noqa: F401
    except ImportError:
        sys.exit("granian is not installed: .venv/bin/pip install granian")
    work = Path(tempfile.mkdtemp(prefix="relay-servers-"))
    fake_port = free_port()
    fake = start([PY, "-m", "gateway.testing.fake_upstream", "--port", str(fake_port), "--chunks", str(CHUNKS),
                  "--text", "word " * CHUNKS])  # fmt: skip
    fake_url = f"http://127.0.0.1:{fake_port}"
    wait_http(fake_url + "/v1/models")
    print(f"{'server':8} {'app':6} {'mode':6} | {'req/s':>7} {'cpu ms/req':>10}")
    print("-" * 45)
    procs = []
    try:
        targets = []
        for server in ("uvicorn", "granian"):
            port = free_port()
            bare = start([PY, str(ROOT / "bench" / "bare_relay.py"), "--port", str(port), "--upstream", fake_url,
                          "--server", server])  # fmt: skip
            wait_http(f"http://127.0.0.1:{port}/v1/messages")
            relay, url, key, cleanup = setup_relay(args.backend, fake_url, work / server, server=server)
            procs.append((bare, relay, cleanup))
            targets.append((server, "bare", bare, f"http://127.0.0.1:{port}", "m", []))
            targets.append((server, "relay", relay, url, "bench-openai", [f"authorization: Bearer {key}"]))
        for _ in range(args.rounds):
            for stream in (False, True):
                for server, app, proc, url, model, headers in targets:
                    cpu0 = proc.cpu_seconds(children=True)
                    r = load(url + "/v1/chat/completions", body("openai", model, stream), headers, args.concurrency,
                             args.seconds)  # fmt: skip
                    cpu = (proc.cpu_seconds(children=True) - cpu0) * 1000 / max(r["ok"], 1)
                    mode = "stream" if stream else "json"
                    print(f"{server:8} {app:6} {mode:6} | {r['rps']:7.0f} {cpu:10.3f}", flush=True)
    finally:
        for bare, relay, cleanup in procs:
            relay.stop()
            bare.stop()
            cleanup()
        fake.stop()


if __name__ == "__main__":
    main()
