"""The fake upstream's Anthropic message batches: every batch ends at once, each request answered with
``answer to <custom_id>`` (10 input and 5 output tokens), or an error when its ``params`` carry
``"fail": true``."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.testing.fake_replies import Reply, _encode, anthropic_error_body, anthropic_message

JSON = dict[str, Any]


class FakeBatches:
    def __init__(self) -> None:
        self.batches: dict[str, JSON] = {}
        self.results: dict[str, list[JSON]] = {}

    def handle(self, request: web.Request, body: Any, base_url: str) -> web.Response:
        parts = request.path.rstrip("/").split("/messages/batches", 1)[1].strip("/").split("/")
        batch_id, action = [*parts, "", ""][:2]
        if request.method == "POST" and not batch_id:
            return self._create(body, base_url)
        batch = self.batches.get(batch_id)
        if batch is None:
            return _json(anthropic_error_body(404, f"batch {batch_id} not found"), 404)
        if request.method == "GET" and action == "results":
            lines = b"".join(_encode(line) + b"\n" for line in self.results[batch_id])
            return web.Response(body=lines, content_type="application/binary")
        if request.method == "GET":
            return _json(batch)
        if request.method == "POST" and action == "cancel":
            batch["cancel_initiated_at"] = batch["cancel_initiated_at"] or _now()
            return _json(batch)
        if request.method == "DELETE":
            del self.batches[batch_id]
            return _json({"id": batch_id, "type": "message_batch_deleted"})
        return _json(anthropic_error_body(405, "method not allowed"), 405)

    def _create(self, body: Any, base_url: str) -> web.Response:
        batch_id = "msgbatch_" + secrets.token_hex(12)
        results = []
        for item in body.get("requests") or []:
            params, custom_id = item["params"], item["custom_id"]
            if params.get("fail"):
                error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad params"}}
                results.append({"custom_id": custom_id, "result": {"type": "errored", "error": error}})
                continue
            message = anthropic_message(Reply(text=f"answer to {custom_id}", usage=(10, 5)), params)
            results.append({"custom_id": custom_id, "result": {"type": "succeeded", "message": message}})
        succeeded = sum(r["result"]["type"] == "succeeded" for r in results)
        counts = {"processing": 0, "succeeded": succeeded, "errored": len(results) - succeeded}
        self.batches[batch_id] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended",
            "request_counts": {**counts, "canceled": 0, "expired": 0},
            "ended_at": _now(),
            "created_at": _now(),
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{batch_id}/results",
        }
        self.results[batch_id] = results
        return _json(self.batches[batch_id])


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json(obj: JSON, status: int = 200) -> web.Response:
    return web.Response(body=_encode(obj), status=status, content_type="application/json")
