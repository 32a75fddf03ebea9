# Relay gateway image. Production settings come from the environment (README "Configuration" and
# "Production"). Build: docker build -t relay:0.1.0 .   (tag with the version, never rely on `latest`)
#
# Two stages: the first builds the wheel and installs it into a venv at /opt/relay; the second is a
# clean python:3.11-slim with only that venv. No compiler, no source tree, no pip in the final image.
#
# What the final image leaves out, and why (checked by import graph and by running the app without them):
# - numpy (~73 MB): required by quicktok-v1, which imports it only inside quicktok.count_batch(); Relay
#   counts tokens with Tokenizer.encode() (gateway/tokencount.py) and never calls count_batch.
# - faker (~25 MB) and polyfactory: hard requirements of litestar, used only by litestar.testing and by
#   OpenAPI example generation (OpenAPIConfig.create_examples, off in Relay).
# - pip and setuptools: nothing installs at run time.
# What stays: every other requirement in pyproject.toml is imported at run time; uvicorn[standard] brings
# uvloop and httptools (used: the event loop and HTTP parser) plus watchfiles, websockets and
# python-dotenv (small, unused); rich/pygments come with litestar's CLI (litestar imports rich).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/relay
WORKDIR /src
# Dependencies first, for a cached layer: a stub package with the real pyproject.toml.
COPY pyproject.toml README.md ./
RUN mkdir -p gateway admin_ui && touch gateway/__init__.py admin_ui/__init__.py \
    && /opt/relay/bin/pip install . && /opt/relay/bin/pip uninstall -y relay-gateway \
    && rm -rf gateway admin_ui build *.egg-info
# The source (migrations, catalog, templates and static files ship inside the wheel: pyproject.toml).
COPY gateway ./gateway
COPY admin_ui ./admin_ui
# EXTRAS: optional extras of the wheel, e.g. `docker build --build-arg EXTRAS=otel` for OpenTelemetry tracing.
ARG EXTRAS=""
RUN /opt/relay/bin/pip wheel --no-deps . -w /wheels \
    && wheel="$(ls /wheels/relay_gateway-*.whl)" \
    && /opt/relay/bin/pip install --no-deps "$wheel" \
    && if [ -n "$EXTRAS" ]; then /opt/relay/bin/pip install "$wheel[$EXTRAS]"; fi \
    && /opt/relay/bin/pip uninstall -y numpy faker polyfactory \
    && /opt/relay/bin/python -c "import gateway.app, gateway.tokencount, gateway.cli.serve" \
    && /opt/relay/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/relay/bin:$PATH
COPY --from=build /opt/relay /opt/relay
# A fixed non-root uid (Kubernetes' runAsNonRoot checks it); /data holds the usage spool (and, embedded,
# the SQLite file and its secret key). The root filesystem may be mounted read-only: only /data and /tmp
# are written.
RUN useradd --system --uid 10001 --user-group --no-create-home relay && mkdir -p /data && chown relay:relay /data
USER 10001:10001
WORKDIR /data
ENV RELAY_HOST=0.0.0.0 RELAY_PORT=8080
EXPOSE 8080
# /healthz answers at the unprefixed path also under RELAY_ROOT_PATH.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
# Embedded (no RELAY_DATABASE_URL) it migrates its SQLite file by itself. On Postgres run `relay migrate`
# first (compose's `migrate` service, the Kubernetes init container): `relay serve` refuses a schema that
# is behind and says so.
CMD ["relay", "serve"]
