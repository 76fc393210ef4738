# The gateway service: `docker compose up` builds and runs it (README, "Running in production").
# On start it creates a development PKI if the key volume is empty, migrates the database, then
# serves the HTTP API on port 8080.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# lxml, cryptography, asyncpg and the rest ship manylinux wheels: no compiler is needed. The
# XSDs (schemas/), the sample directory and the migrations install as package data.
COPY pyproject.toml README.md /tmp/src/
COPY gateway /tmp/src/gateway
COPY schemas /tmp/src/schemas
COPY adapters /tmp/src/adapters
RUN pip install /tmp/src \
 && rm -rf /tmp/src \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/gateway --create-home gateway \
 && mkdir -p /var/lib/gateway/var /var/lib/gateway/keys \
 && chown -R gateway:gateway /var/lib/gateway \
 && chmod 0700 /var/lib/gateway/keys

USER gateway
WORKDIR /var/lib/gateway
ENV GATEWAY_HOME=/var/lib/gateway/var \
    GATEWAY_KEYS=/var/lib/gateway/keys
VOLUME ["/var/lib/gateway/var", "/var/lib/gateway/keys"]
EXPOSE 8080

# /readyz answers 200 only when the database and the bus answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=4).status != 200)"]

# exec makes the server PID 1, so the SIGTERM of `docker stop` reaches it and it shuts down
# gracefully (in-flight requests finish, nothing accepted is lost).
CMD ["sh", "-c", "if [ ! -e \"$GATEWAY_KEYS/trust.pem\" ]; then echo \"no keys in $GATEWAY_KEYS: creating a development PKI (put real keys there for production)\"; gateway keys init --out \"$GATEWAY_KEYS\" || exit 2; fi; gateway db upgrade && exec gateway serve --host 0.0.0.0 --port 8080"]
