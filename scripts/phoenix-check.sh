#!/usr/bin/env bash
# Not part of CI: the quickstart example's trace in Arize Phoenix, over OTLP.
#
# Installs Phoenix in a virtualenv (VENV, default target/phoenix-venv), runs
# `phoenix serve` on PORT (default 6006, which also takes OTLP/HTTP at
# /v1/traces), runs `cargo run --features otlp --example quickstart` with
# OTEL_EXPORTER_OTLP_ENDPOINT pointed at it, then reads the spans back
# through Phoenix's REST API and checks that the LLM spans are LLM spans
# with their token counts (phoenix_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-target/phoenix-venv}
PORT=${PORT:-6006}
if [ ! -x "$VENV/bin/phoenix" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet arize-phoenix
fi

workdir=$(mktemp -d)
PHOENIX_WORKING_DIR="$workdir" PHOENIX_PORT="$PORT" "$VENV/bin/phoenix" serve >"$workdir/phoenix.log" 2>&1 &
phoenix=$!
trap 'kill "$phoenix" 2>/dev/null || true; wait "$phoenix" 2>/dev/null || true; rm -rf "$workdir"' EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$workdir/phoenix.log"; exit 1; }
echo "phoenix: up on port $PORT ($("$VENV/bin/pip" show arize-phoenix | grep '^Version'))"

OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PORT" \
OTEL_SERVICE_NAME=vigil-quickstart \
VIGIL_PROJECT_ID=vigil-quickstart \
  cargo run --quiet --features otlp --example quickstart

"$VENV/bin/python" scripts/phoenix_check.py "http://127.0.0.1:$PORT" vigil-quickstart
