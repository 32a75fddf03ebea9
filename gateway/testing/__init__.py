"""Test and benchmark helpers: a scriptable fake LLM upstream speaking both dialects."""
