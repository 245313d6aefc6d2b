// Command go-service is a tiny HTTP service whose log/slog JSON handler emits obskit log
// schema v1: one JSON object per line with timestamp (RFC 3339, UTC, "Z"), level
// (DEBUG/INFO/WARN/ERROR), service, message, and trace_id/span_id taken from an incoming W3C
// traceparent header (omitted when there is none). Standard library only.
//
//	go run . -addr 127.0.0.1:8080 -log /app/logs/go-service.log
//	go run . -demo -log ./demo.log      # writes a few lines and exits
//	go run . -crash -log ./demo.log     # writes a line, then panics (the goroutine dump
//	                                    # goes into the log file too: obskit-sidecar ships
//	                                    # it as one record)
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

type traceKey struct{}

// traceContext is the part of a W3C traceparent header that goes into every log line.
type traceContext struct{ traceID, spanID string }

// parseTraceparent accepts "00-<32 hex>-<16 hex>-<2 hex>" (any version but ff) and rejects
// all-zero ids, as the W3C Trace Context spec requires.
func parseTraceparent(h string) (traceContext, bool) {
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" {
		return traceContext{}, false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return traceContext{}, false
	}
	tid, sid := strings.ToLower(parts[1]), strings.ToLower(parts[2])
	if !isHex(tid, 32) || !isHex(sid, 16) || !isHex(parts[3], 2) {
		return traceContext{}, false
	}
	if strings.Trim(tid, "0") == "" || strings.Trim(sid, "0") == "" {
		return traceContext{}, false
	}
	return traceContext{traceID: tid, spanID: sid}, true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// withTrace stores the trace ids of an incoming request in its context.
func withTrace(ctx context.Context, r *http.Request) context.Context {
	if tc, ok := parseTraceparent(r.Header.Get("traceparent")); ok {
		return context.WithValue(ctx, traceKey{}, tc)
	}
	return ctx
}

// traceHandler adds trace_id/span_id from the context to every record (slog.Handler wrapper).
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if tc, ok := ctx.Value(traceKey{}).(traceContext); ok {
		r.AddAttrs(slog.String("trace_id", tc.traceID), slog.String("span_id", tc.spanID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// replaceAttr renames slog's built-in keys to schema v1 and normalises their values.
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		// Schema v1 wants UTC with a "Z"; slog's default keeps the local offset.
		t := a.Value.Time().UTC()
		return slog.String("timestamp", t.Format("2006-01-02T15:04:05.000000000Z"))
	case slog.LevelKey:
		return slog.String("level", levelName(a.Value.Any()))
	case slog.MessageKey:
		return slog.String("message", a.Value.String())
	}
	return a
}

// levelName maps slog levels (including custom ones like LevelInfo+2) onto the four schema
// levels by range, so no line ever carries "WARNING" or "INFO+2".
func levelName(v any) string {
	l, ok := v.(slog.Level)
	if !ok {
		return "INFO"
	}
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARN"
	default:
		return "ERROR"
	}
}

// newLogger returns a schema v1 logger writing to w.
func newLogger(w io.Writer, service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: replaceAttr})
	return slog.New(traceHandler{h}).With(slog.String("service", service))
}

func openLog(path string) (*os.File, error) {
	if path == "" || path == "-" {
		return os.Stdout, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

func demo(log *slog.Logger) {
	ctx := context.Background()
	log.InfoContext(ctx, "service starting", slog.String("version", "1.0.0"))
	log.DebugContext(ctx, "cache warmed", slog.Int("entries", 42))
	req, _ := http.NewRequest(http.MethodGet, "http://example.invalid/orders/17", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	tctx := withTrace(ctx, req)
	log.InfoContext(tctx, "order fetched", slog.Int("order_id", 17), slog.Duration("took", 3*time.Millisecond))
	log.WarnContext(tctx, "slow dependency", slog.String("dependency", "inventory"))
	log.ErrorContext(tctx, "payment declined", slog.String("reason", "card expired"))
	log.Log(ctx, slog.LevelInfo+2, "custom level maps to INFO")
	log.InfoContext(ctx, "service stopping")
}

// copyCrashOutput makes the runtime also write a panic's goroutine dump into the log file:
// on stderr alone the sidecar would not see it; between the JSON lines it is grouped into
// one ERROR record (Go 1.23+).
func copyCrashOutput(f *os.File) {
	if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "go-service: crash output: %v\n", err)
	}
}

// order and its item are what -crash trips over: an index out of range, as in real life.
type order struct{ items []int }

func (o *order) item(i int) int { return o.items[i] }

func crash(log *slog.Logger) {
	log.Info("processing order", slog.Int("order_id", 17))
	o := &order{items: []int{4, 2}}
	log.Info("order item", slog.Int("item", o.item(5)))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	logPath := flag.String("log", "", "log file (default stdout); e.g. /app/logs/go-service.log")
	service := flag.String("service", "go-service", "value of the service field")
	debug := flag.Bool("debug", false, "log DEBUG lines too")
	demoMode := flag.Bool("demo", false, "write a few log lines and exit")
	crashMode := flag.Bool("crash", false, "write a log line, then panic")
	flag.Parse()

	out, err := openLog(*logPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-service: cannot open log %s: %v\n", *logPath, err)
		os.Exit(2)
	}
	defer out.Close()
	if out != os.Stdout {
		copyCrashOutput(out)
	}
	level := slog.LevelInfo
	if *debug || *demoMode {
		level = slog.LevelDebug
	}
	log := newLogger(out, *service, level)

	if *demoMode {
		demo(log)
		return
	}
	if *crashMode {
		crash(log)
		return
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ctx := withTrace(r.Context(), r)
		log.InfoContext(ctx, "request", slog.String("method", r.Method), slog.String("path", r.URL.Path))
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// net.Listen first so "-addr 127.0.0.1:0" works and the log says which port was chosen.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("cannot listen", slog.String("addr", *addr), slog.String("error", err.Error()))
		os.Exit(1)
	}
	log.Info("listening", slog.String("addr", ln.Addr().String()))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(ln); err != nil {
		log.Error("server stopped", slog.String("error", err.Error()))
		os.Exit(1)
	}
}
