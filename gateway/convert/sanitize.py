"""The history sanitizer (conversion.md §2.4), over Anthropic-shaped message dicts.

One implementation serves every path: Anthropic passthrough (lossless: unknown fields,
``cache_control`` and signatures survive), A→O (before rendering) and O→A (after parsing).
The input is never mutated.
"""

from __future__ import annotations

from typing import Any

from gateway.convert.ids import is_minted_signature, sanitize_tool_id

__all__ = ["INTERRUPTED", "NO_OUTPUT", "sanitize_anthropic_body", "sanitize_messages"]

INTERRUPTED = "(no result: tool call was interrupted)"
NO_OUTPUT = "(no output)"
CONVERSATION_START = "(conversation start)"
MAX_CACHE_BREAKPOINTS = 4

Block = dict[str, Any]
Msg = dict[str, Any]


def _blocks(content: Any) -> list[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(b) for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _blank(block: Block) -> bool:
    return block.get("type") == "text" and not str(block.get("text") or "").strip()


def _clean_result(block: Block) -> Block:
    content = block.get("content")
    if isinstance(content, list):
        content = [b for b in content if isinstance(b, dict) and not _blank(b)]
    if not content or (isinstance(content, str) and not content.strip()):
        content = NO_OUTPUT
    return {**block, "content": content}


def _clean_blocks(blocks: list[Block], *, for_anthropic: bool, notes: list[str]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        kind = block.get("type")
        if _blank(block):
            cache = block.get("cache_control")
            if cache is not None and out and out[-1].get("type") not in ("thinking", "redacted_thinking"):
                out[-1] = {**out[-1], "cache_control": cache}
            notes.append("empty_text_dropped")
            continue
        if kind == "thinking" and for_anthropic:
            if not block.get("signature") or is_minted_signature(block.get("signature")):
                notes.append("foreign_thinking_dropped")
                continue
            block.pop("cache_control", None)
        if kind == "tool_result":
            block = _clean_result(block)
        if for_anthropic and kind == "tool_use":
            block["id"] = sanitize_tool_id(str(block.get("id") or ""))
        if for_anthropic and kind == "tool_result":
            block["tool_use_id"] = sanitize_tool_id(str(block.get("tool_use_id") or ""))
        out.append(block)
    return out


def _merge(messages: list[Msg]) -> list[Msg]:
    out: list[Msg] = []
    for msg in messages:
        if out and msg["role"] == out[-1]["role"] and msg["role"] in ("user", "assistant"):
            out[-1] = {**out[-1], "content": out[-1]["content"] + msg["content"]}
        else:
            out.append(msg)
    return out


def _result_text(block: Block) -> str:
    content = block.get("content")
    if isinstance(content, list):
        content = "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    return f"Result of tool {block.get('tool_use_id')}: {content}"


def _error_result(tool_id: str) -> Block:
    return {"type": "tool_result", "tool_use_id": tool_id, "is_error": True, "content": INTERRUPTED}


def _pair_user(msg: Msg, expected: list[str], notes: list[str]) -> Msg:
    """Tool results first, one per expected id; orphans become text; missing ones are filled in."""
    results: list[Block] = []
    rest: list[Block] = []
    seen: set[str] = set()
    for block in msg["content"]:
        if block.get("type") != "tool_result":
            rest.append(block)
            continue
        tid = block.get("tool_use_id")
        if tid in expected and tid not in seen:
            seen.add(str(tid))
            results.append(block)
        else:
            notes.append("orphan_tool_result")
            rest.append({"type": "text", "text": _result_text(block)})
            rest.extend(b for b in block.get("content") or [] if isinstance(b, dict) and b.get("type") == "image")
    missing = [_error_result(t) for t in expected if t not in seen]
    if missing:
        notes.append("orphan_tool_use")
    return {**msg, "content": results + missing + rest}


def _pair(messages: list[Msg], notes: list[str]) -> list[Msg]:
    out: list[Msg] = []
    expected: list[str] = []
    for msg in messages:
        role = msg["role"]
        if role == "user":
            msg = _pair_user(msg, expected, notes)
            expected = []
        elif role == "assistant":
            if expected:
                notes.append("orphan_tool_use")
                out.append({"role": "user", "content": [_error_result(t) for t in expected]})
            ids = [str(b.get("id")) for b in msg["content"] if b.get("type") == "tool_use"]
            expected = list(dict.fromkeys(ids))
        out.append(msg)
    if expected:
        notes.append("orphan_tool_use")
        out.append({"role": "user", "content": [_error_result(t) for t in expected]})
    return out


def sanitize_messages(messages: list[Any], *, for_anthropic: bool, notes: list[str], pair: bool = True) -> list[Msg]:
    """Clean, merge and pair a message list; ``notes`` receives what changed.

    ``pair=False`` leaves tool results where they are: the continued turn of an upstream-held
    thread answers tool uses the upstream holds, so they are not orphans.
    """
    cleaned: list[Msg] = []
    for raw in messages:
        msg = dict(raw)
        if msg.get("role") == "system":
            cleaned.append(msg)
            continue
        msg["content"] = _clean_blocks(_blocks(msg.get("content")), for_anthropic=for_anthropic, notes=notes)
        cleaned.append(msg)
    last = len(cleaned) - 1
    kept = [m for i, m in enumerate(cleaned) if m["role"] == "system" or m["content"] or _is_prefill(m, i, last)]
    if len(kept) != len(cleaned):
        notes.append("empty_message_dropped")
    out = _pair(_merge(kept), notes) if pair else _merge(kept)
    if for_anthropic and pair:
        first = next((m for m in out if m["role"] != "system"), None)
        if first is not None and first["role"] == "assistant":
            out.insert(out.index(first), {"role": "user", "content": [{"type": "text", "text": CONVERSATION_START}]})
    return out


def _is_prefill(msg: Msg, index: int, last: int) -> bool:
    return index == last and msg["role"] == "assistant"


def _last_assistant(messages: list[Any]) -> Msg | None:
    return next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "assistant"), None)


def _thinking_conflict(original: list[Any], cleaned: list[Msg], mode: str, strict: bool) -> bool:
    """Thinking is on but the final tool-use turn no longer starts with a signed thinking block (§5.5)."""
    last = _last_assistant(cleaned)
    if last is None or not any(b.get("type") == "tool_use" for b in last["content"]):
        return False
    if last["content"][0].get("type") in ("thinking", "redacted_thinking"):
        return False
    if strict or mode == "enabled":
        return True
    before = _last_assistant(original)
    return before is not None and any(b.get("type") == "thinking" for b in _blocks(before.get("content")))


def _cache_refs(body: dict[str, Any]) -> list[Block]:
    refs: list[Block] = []
    for msg in body.get("messages") or []:
        content = msg.get("content")
        refs.extend(b for b in content if isinstance(content, list) and "cache_control" in b)
    system = body.get("system")
    if isinstance(system, list):
        refs.extend(b for b in system if isinstance(b, dict) and "cache_control" in b)
    refs.extend(t for t in body.get("tools") or [] if isinstance(t, dict) and "cache_control" in t)
    return refs


def _limit_cache_breakpoints(body: dict[str, Any], notes: list[str]) -> None:
    refs = _cache_refs(body)
    for block in refs[: max(len(refs) - MAX_CACHE_BREAKPOINTS, 0)]:
        block.pop("cache_control", None)
        notes.append("cache_breakpoint_dropped")


def sanitize_anthropic_body(
    body: dict[str, Any], *, for_anthropic: bool = True, strict_thinking: bool = False, pair: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """Sanitize a whole A request body. ``for_anthropic``: the upstream is real Anthropic.

    ``strict_thinking``: disable thinking whenever the final tool-use turn lacks a signed thinking
    block (the O→A path, where the history came from an OpenAI client); otherwise only when a
    foreign thinking block was dropped from it or thinking is in budget mode.
    """
    notes: list[str] = []
    out = dict(body)
    out["messages"] = sanitize_messages(body.get("messages") or [], for_anthropic=for_anthropic, notes=notes, pair=pair)
    if for_anthropic:
        if isinstance(out.get("system"), list):
            out["system"] = [dict(b) for b in out["system"]]
        if isinstance(out.get("tools"), list):
            out["tools"] = [dict(t) if isinstance(t, dict) else t for t in out["tools"]]
        _limit_cache_breakpoints(out, notes)
        thinking = out.get("thinking")
        mode = str(thinking.get("type")) if isinstance(thinking, dict) else "disabled"
        original = body.get("messages") or []
        if mode in ("enabled", "adaptive") and _thinking_conflict(original, out["messages"], mode, strict_thinking):
            out.pop("thinking", None)
            notes.append("thinking_disabled_unsigned_history")
    return out, list(dict.fromkeys(notes))
