"""Web search run by Relay for models that have none of their own (issue 14).

Claude Code's WebSearch sends Anthropic's ``web_search_*`` server tool. An Anthropic upstream runs it
natively (passthrough, untouched). To an OpenAI-dialect upstream Relay offers the model a plain
``web_search({"query"})`` function instead, runs each call against the operator's search backend, feeds
the results back and answers the client only when the model is done, with Anthropic's
``server_tool_use`` / ``web_search_tool_result`` blocks (``loop.py``).

The backend speaks **SearXNG's JSON API** (``GET {RELAY_WEB_SEARCH_URL}?q=…&format=json`` →
``{"results": [{"url", "title", "content", "publishedDate"}]}``, ``backend.py``), because SearXNG is
self-hostable, aggregates many engines behind one endpoint, is the de-facto JSON shape open LLM tooling
already speaks (Open WebUI, LangChain, LibreChat, …), and ties nobody to a vendor: a commercial search
API (Brave, Tavily, Bing, …) sits behind a small adapter that answers in that shape.

``blocks.py`` is the pure part (results filtered and capped, Anthropic blocks, the synthesized stream);
``backend.py`` and ``loop.py`` do the I/O. Without ``RELAY_WEB_SEARCH_URL`` nothing here runs and the
server tool is dropped with the note ``web_search_unavailable``.
"""
