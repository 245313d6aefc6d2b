#!/bin/sh
# Creates the Kibana data view for obskit logs once Kibana answers. Idempotent (override=true),
# bounded wait (WAIT_TRIES x 5 s, 10 minutes by default), exits non-zero with the reason when
# Kibana never becomes available or rejects the request.
set -eu
KIBANA_URL="${KIBANA_URL:-http://kibana:5601}"
DATA_VIEW_FILE="${DATA_VIEW_FILE:-/setup/data-view.json}"
WAIT_TRIES="${WAIT_TRIES:-120}"
WAIT_SECONDS="${WAIT_SECONDS:-5}"
tries=0
until curl -fsS "$KIBANA_URL/api/status" 2>/dev/null | grep -Eq '"level" *: *"available"'; do
  tries=$((tries + 1))
  if [ "$tries" -ge "$WAIT_TRIES" ]; then
    echo "kibana-setup: Kibana at $KIBANA_URL not available after $tries tries" >&2
    exit 1
  fi
  sleep "$WAIT_SECONDS"
done
curl -fsS -X POST "$KIBANA_URL/api/data_views/data_view" \
  -H 'kbn-xsrf: true' -H 'Content-Type: application/json' \
  --data "@$DATA_VIEW_FILE"
echo
echo "kibana-setup: data view created from $DATA_VIEW_FILE"
