"""The web search loop: call the upstream, run the model's ``web_search`` calls, repeat, then answer.

All of it happens before the client's first byte, without streaming upstream: a streamed request
gets the finished message as one synthesized Anthropic stream (``blocks.message_events``), so an
upstream failure anywhere in the loop is still an ordinary HTTP error (and may fall back).

Bounds: at most ``max_uses`` searches a request (default 5; a call beyond gets Anthropic's
``max_uses_exceeded`` error as its result), the backend's per-search timeout, five results a search,
snippets capped (``blocks``), and ``max_uses + 2`` upstream calls: a model still searching after that
gets its calls answered with that error and the message ends with ``stop_reason: "pause_turn"``.
A forced ``tool_choice`` (Claude Code forces ``web_search``) holds for the first call only, as with
Anthropic's server tools: later calls say ``auto``, or the model could only ever search. A call to one
of the client's own tools ends the loop: the client gets it as ``tool_use`` after the searches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.convert import openai_reply_to_anthropic, usage_from_openai
from gateway.convert.a2o_websearch import WEB_SEARCH
from gateway.domain import Usage
from gateway.plans import SearchPlan
from gateway.websearch.backend import SearchFailed
from gateway.websearch.blocks import Hit, error_block, pick, query_error, result_block, server_tool_use, with_usage

__all__ = ["Exchange", "Outcome", "Search", "run"]

Exchange = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Send one OpenAI request body upstream (not streamed); its reply document."""
Search = Callable[[str], Awaitable[list[Hit]]]
"""Run one query; raises ``SearchFailed``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    message: dict[str, Any]
    """The Anthropic message for the client: searches, their results, then the model's answer."""
    usage: Usage
    """Summed over every upstream call of the loop."""
    searches: int
    """Searches the backend answered (what ``usage.server_tool_use.web_search_requests`` says and is billed)."""


def _is_search(block: dict[str, Any]) -> bool:
    return block.get("type") == "tool_use" and block.get("name") == WEB_SEARCH


class _Searches:
    """The searches of one request: counted against ``max_uses``, results picked by the client's rules."""

    def __init__(self, plan: SearchPlan, search: Search, new_id: Callable[[str], str]) -> None:
        self.plan = plan
        self.search = search
        self.new_id = new_id
        self.started = 0
        self.answered = 0

    async def one(self, query: Any, exhausted: bool) -> list[dict[str, Any]]:
        tool_id = self.new_id("srvtoolu_")
        use = server_tool_use(tool_id, query)
        code = "max_uses_exceeded" if exhausted or self.started >= self.plan.spec.max_uses else query_error(query)
        if code is not None:
            return [use, error_block(tool_id, code)]
        self.started += 1
        try:
            hits = await self.search(query)
        except SearchFailed as exc:
            return [use, error_block(tool_id, exc.code)]
        self.answered += 1
        return [use, result_block(tool_id, pick(hits, self.plan.spec))]

    async def turn(self, content: list[dict[str, Any]], exhausted: bool) -> list[dict[str, Any]]:
        """The turn's blocks with each ``web_search`` call replaced by the search and its result."""
        calls = [b for b in content if _is_search(b)]
        # Queries are admitted in the model's order, then run concurrently.
        ran = iter(await asyncio.gather(*(self.one((b.get("input") or {}).get("query"), exhausted) for b in calls)))
        out: list[dict[str, Any]] = []
        for block in content:
            out += next(ran) if _is_search(block) else [block]
        return out


async def run(plan: SearchPlan, exchange: Exchange, search: Search, new_id: Callable[[str], str]) -> Outcome:
    body = {k: v for k, v in plan.body.items() if k not in ("stream", "stream_options")}
    base = list(body["messages"])
    searches = _Searches(plan, search, new_id)
    done: list[dict[str, Any]] = []
    usage = Usage()
    last = plan.spec.max_uses + 2
    for n in range(1, last + 1):
        doc = await exchange(body)
        usage = usage.plus(usage_from_openai(doc.get("usage")))
        reply = openai_reply_to_anthropic(doc, model=plan.model, new_id=new_id, hints=plan.hints)
        content: list[dict[str, Any]] = reply.get("content") or []
        if not any(_is_search(b) for b in content):
            return _outcome(reply, done + content, usage, searches.answered)
        done += await searches.turn(content, exhausted=n == last)
        if any(b.get("type") == "tool_use" for b in done):  # the client's own tool: its turn now
            return _outcome({**reply, "stop_reason": "tool_use"}, done, usage, searches.answered)
        if n == last:
            return _outcome({**reply, "stop_reason": "pause_turn"}, done, usage, searches.answered)
        body = {**body, "messages": base + plan.render(done)}
        if body.get("tool_choice") not in (None, "auto", "none"):
            body["tool_choice"] = "auto"
    raise AssertionError("unreachable: the loop returns")


def _outcome(reply: dict[str, Any], content: list[dict[str, Any]], usage: Usage, searches: int) -> Outcome:
    message = with_usage({**reply, "content": content}, usage, searches)
    return Outcome(message=message, usage=usage, searches=searches)
