package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	cases := map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": true,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01": true,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01": false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": false,
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01":  false,
		"garbage": false,
		"":        false,
	}
	for h, want := range cases {
		if _, ok := parseTraceparent(h); ok != want {
			t.Errorf("parseTraceparent(%q) ok=%v, want %v", h, ok, want)
		}
	}
}

func TestLogLineIsSchemaV1(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(&buf, "svc", slog.LevelDebug)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	log.WarnContext(withTrace(context.Background(), r), "hello")
	log.Log(context.Background(), slog.LevelError+4, "worse")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["level"] != "WARN" || first["message"] != "hello" || first["service"] != "svc" {
		t.Errorf("unexpected line %v", first)
	}
	if first["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || first["span_id"] != "00f067aa0ba902b7" {
		t.Errorf("trace ids missing: %v", first)
	}
	if ts, _ := first["timestamp"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("timestamp not UTC Z: %q", ts)
	}
	if second["level"] != "ERROR" {
		t.Errorf("custom level not mapped: %v", second)
	}
	if _, ok := second["trace_id"]; ok {
		t.Errorf("trace_id must be omitted without a traceparent: %v", second)
	}
	for _, k := range []string{"time", "msg"} {
		if _, ok := first[k]; ok {
			t.Errorf("slog key %q leaked: %v", k, first)
		}
	}
}
