"""obskit-sidecar: tails a log folder, enforces schema v1, forwards to Loki / Elasticsearch."""
