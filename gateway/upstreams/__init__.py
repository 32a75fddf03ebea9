"""One adapter per upstream dialect (URL, auth headers, error normalisation) and the pooled HTTP client.

All traffic to upstreams goes through one ``aiohttp.ClientSession`` per process: httpx's pool
measured ten times slower at 50 concurrent requests on this project's machines
(``shared/reference/performance-notes.md``).
"""
