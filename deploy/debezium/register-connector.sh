#!/bin/sh
# Registers the Debezium PostgreSQL connector with Kafka Connect, or updates it: safe to run any number of times.
#
# PUT /connectors/<name>/config creates the connector when it is missing and replaces its configuration when it
# exists (201 / 200), so re-running `docker compose up` never fails on "connector already exists" the way
# POST /connectors does. The body is the bare configuration map of postgres-connector.json (no "name" key: the
# name is the one in the URL). Runs in the curlimages/curl image (POSIX sh, busybox grep); no other tool needed.
set -eu

CONNECT_URL="${CONNECT_URL:-http://connect:8083}"
CONNECTOR_NAME="${CONNECTOR_NAME:-marketplace-postgres}"
CONNECTOR_CONFIG="${CONNECTOR_CONFIG:-/debezium/postgres-connector.json}"
WAIT_SECONDS="${WAIT_SECONDS:-180}"
RESPONSE=/tmp/connect-response.json

deadline=$(( $(date +%s) + WAIT_SECONDS ))
expired() { [ "$(date +%s)" -ge "$deadline" ]; }

echo "waiting for Kafka Connect at $CONNECT_URL ..."
until curl -fsS -o /dev/null "$CONNECT_URL/connectors"; do
  if expired; then
    echo "Kafka Connect did not answer within ${WAIT_SECONDS}s" >&2
    exit 1
  fi
  sleep 3
done

echo "registering $CONNECTOR_NAME from $CONNECTOR_CONFIG"
while :; do
  status=$(curl -sS -o "$RESPONSE" -w '%{http_code}' -X PUT \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    --data @"$CONNECTOR_CONFIG" "$CONNECT_URL/connectors/$CONNECTOR_NAME/config" || echo 000)
  case "$status" in
    200) echo "connector $CONNECTOR_NAME updated"; break ;;
    201) echo "connector $CONNECTOR_NAME created"; break ;;
    # 409: the workers are rebalancing; 5xx or 000: Connect is still starting. Both pass: try again.
    409 | 5?? | 000)
      if expired; then
        echo "registration still failing (HTTP $status) after ${WAIT_SECONDS}s:" >&2
        cat "$RESPONSE" >&2 2>/dev/null || true
        exit 1
      fi
      sleep 3 ;;
    # 400 and the like: the configuration is wrong (e.g. a property Debezium rejects). Retrying cannot help.
    *)
      echo "Kafka Connect refused the configuration (HTTP $status):" >&2
      cat "$RESPONSE" >&2
      echo >&2
      exit 1 ;;
  esac
done

# Report the task's state, so `docker compose logs connect-init` says whether the snapshot started.
while :; do
  curl -sS -o "$RESPONSE" "$CONNECT_URL/connectors/$CONNECTOR_NAME/status" || true
  if grep -Eq '"tasks" *: *\[ *\{[^]]*"state" *: *"RUNNING"' "$RESPONSE" 2>/dev/null; then
    echo "connector $CONNECTOR_NAME is RUNNING:"
    cat "$RESPONSE"
    echo
    exit 0
  fi
  if grep -Eq '"state" *: *"FAILED"' "$RESPONSE" 2>/dev/null; then
    echo "connector $CONNECTOR_NAME FAILED:" >&2
    cat "$RESPONSE" >&2
    echo >&2
    exit 1
  fi
  if expired; then
    echo "connector $CONNECTOR_NAME registered but not yet RUNNING; last status:" >&2
    cat "$RESPONSE" >&2 2>/dev/null || true
    echo >&2
    exit 1
  fi
  sleep 2
done
