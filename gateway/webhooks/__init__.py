"""Alert webhooks: events queued durably in ``webhook_deliveries`` and POSTed, signed, off the request path.

``outbox.enqueue`` queues an event inside the caller's transaction; ``service.Alerts`` delivers the queue
(retrying with backoff) and sweeps for budget thresholds and expired keys. ``signing`` holds the wire format.
"""

from __future__ import annotations

BUDGET_THRESHOLD = "budget.threshold"
KEY_DISABLED = "key.disabled"
UPSTREAM_KEY_DISABLED = "upstream_key.disabled"
UPSTREAM_CIRCUIT_OPEN = "upstream.circuit_open"
WEBHOOK_TEST = "webhook.test"

EVENTS: tuple[str, ...] = (BUDGET_THRESHOLD, KEY_DISABLED, UPSTREAM_KEY_DISABLED, UPSTREAM_CIRCUIT_OPEN, WEBHOOK_TEST)
"""Every event type a webhook may subscribe to (an empty subscription receives them all)."""
