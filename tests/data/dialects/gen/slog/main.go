// Command slog writes Go log/slog's default JSON lines (no ReplaceAttr), the golden input of
// the go-slog dialect: tests/data/dialects/go-slog.log. Standard library only.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"
)

func main() {
	// A fixed zone, so the golden file shows slog's local offset whatever the machine's TZ.
	time.Local = time.FixedZone("CET", 3600)
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	log.Debug("cache warmed", slog.Int("entries", 42))
	log.Info("order fetched", slog.Int("order_id", 17), slog.String("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), slog.String("span_id", "00f067aa0ba902b7"))
	log.Warn("slow dependency", slog.String("dependency", "inventory"), slog.Duration("took", 1500*time.Millisecond))
	log.Error("payment declined", slog.Any("error", errors.New("card expired")), slog.Group("req", slog.String("method", "POST"), slog.String("path", "/pay")))
	log.Log(ctx, slog.LevelInfo+2, "custom level between INFO and WARN")
	log.Log(ctx, slog.LevelError+4, "custom level above ERROR")
	log.Log(ctx, slog.LevelDebug-4, "custom level below DEBUG")
	log.With(slog.String("service", "orders")).Info("service attribute set by the program")
	src := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{AddSource: true}))
	src.Info("with AddSource", slog.String("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
}
