#!/bin/sh
# Creates the Kibana data view for obskit logs once Kibana answers. Idempotent (override=true),
# bounded wait (10 minutes), exits non-zero with the reason when Kibana never comes up.
set -eu
KIBANA_URL="${KIBANA_URL:-http://kibana:5601}"
tries=0
until curl -fsS "$KIBANA_URL/api/status" | grep -q '"level":"available"'; do
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "kibana-setup: Kibana at $KIBANA_URL not available after 10 minutes" >&2
    exit 1
  fi
  sleep 5
done
curl -fsS -X POST "$KIBANA_URL/api/data_views/data_view" \
  -H 'kbn-xsrf: true' -H 'Content-Type: application/json' \
  --data @/setup/data-view.json
echo
echo "kibana-setup: data view 'obskit logs' created"
