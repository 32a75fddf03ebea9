# Relay gateway image. Production settings come from the environment (see README "Configuration").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Dependencies first, for a cached layer; the source (with migrations/) is copied after.
COPY pyproject.toml README.md ./
RUN mkdir -p gateway admin_ui && touch gateway/__init__.py admin_ui/__init__.py \
    && pip install -e . && rm -rf gateway admin_ui
COPY alembic.ini ./
COPY gateway ./gateway
COPY admin_ui ./admin_ui

RUN useradd --system --uid 10001 relay && mkdir -p /data && chown relay /data
USER relay
WORKDIR /data
ENV RELAY_HOST=0.0.0.0 RELAY_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["sh", "-c", "relay migrate && exec relay serve"]
