"""Responses content parts that carry media: ``input_image`` and ``input_file`` as Anthropic blocks."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from gateway.convert.validation import field_error

__all__ = ["file_block", "image_block"]

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
Block = dict[str, Any]


def _data_url(url: str) -> tuple[str, str] | None:
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    return head.lower(), data


def image_block(part: dict[str, Any], at: str) -> Block:
    url = part.get("image_url")
    if part.get("file_id") and not url:
        raise field_error(f"{at}.file_id", "file ids are not supported; send image_url")
    if not isinstance(url, str) or not url:
        raise field_error(f"{at}.image_url", "field required")
    parsed = _data_url(url)
    if parsed is None:
        if not url.startswith(("http://", "https://")):
            raise field_error(f"{at}.image_url", "must be an http(s) or base64 data URL")
        return {"type": "image", "source": {"type": "url", "url": url}}
    media, data = parsed
    if media not in IMAGE_TYPES:
        raise field_error(f"{at}.image_url", f"unsupported image type '{media}'")
    return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}


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
    parsed = _data_url(raw)
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
