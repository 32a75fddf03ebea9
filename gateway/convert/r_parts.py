"""Responses content parts that carry media: ``input_image`` and ``input_file`` as Anthropic blocks."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from gateway.convert.o2a_messages import data_url
from gateway.convert.o2a_messages import image_block as chat_image_block
from gateway.convert.validation import field_error

__all__ = ["file_block", "image_block"]

Block = dict[str, Any]


def image_block(part: dict[str, Any], at: str) -> Block:
    """``input_image`` carries its URL as a plain string, which the Chat converter's reader takes as is."""
    if part.get("file_id") and not part.get("image_url"):
        raise field_error(f"{at}.file_id", "file ids are not supported; send image_url")
    return chat_image_block(part, at)


def file_block(part: dict[str, Any], at: str) -> Block:
    if part.get("file_id"):
        raise field_error(f"{at}.file_id", "file ids are not supported; send file_data")
    filename = str(part.get("filename") or "")
    url = part.get("file_url")
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "document", "source": {"type": "url", "url": url}, **({"title": filename} if filename else {})}
    raw = part.get("file_data")
    if not isinstance(raw, str) or not raw:
        raise field_error(f"{at}.file_data", "field required")
    parsed = data_url(raw)
    media, data = parsed if parsed is not None else (_media_for(filename), raw)
    if media == "application/pdf":
        doc: Block = {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}}
        return {**doc, "title": filename} if filename else doc
    if media.startswith("text/"):
        try:
            return {"type": "text", "text": base64.b64decode(data, validate=True).decode("utf-8", "replace")}
        except (binascii.Error, ValueError):
            raise field_error(f"{at}.file_data", "invalid base64") from None
    raise field_error(f"{at}.file_data", f"unsupported file type '{media or 'unknown'}'")


def _media_for(filename: str) -> str:
    lowered = filename.lower()
    if lowered.endswith(".pdf"):
        return "application/pdf"
    if lowered.endswith((".txt", ".md", ".csv", ".json", ".py")):
        return "text/plain"
    return ""
