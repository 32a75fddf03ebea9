"""Split ``<think>…</think>`` spans out of streamed content (profile ``think_tags``, §5.5)."""

from __future__ import annotations

__all__ = ["ThinkTagSplitter"]

OPEN = "<think>"
CLOSE = "</think>"


class ThinkTagSplitter:
    """Feed content pieces; get ``("reasoning" | "text", str)`` pieces, tags split anywhere."""

    def __init__(self) -> None:
        self._buf = ""
        self._inside = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        self._buf += text
        out: list[tuple[str, str]] = []
        while self._buf:
            tag = CLOSE if self._inside else OPEN
            pos = self._buf.find(tag)
            if pos >= 0:
                self._emit(out, self._buf[:pos])
                self._buf = self._buf[pos + len(tag) :]
                self._inside = not self._inside
                continue
            keep = _partial_suffix(self._buf, tag)
            self._emit(out, self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            break
        return out

    def flush(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._emit(out, self._buf)
        self._buf = ""
        return out

    def _emit(self, out: list[tuple[str, str]], piece: str) -> None:
        if piece:
            out.append(("reasoning" if self._inside else "text", piece))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
