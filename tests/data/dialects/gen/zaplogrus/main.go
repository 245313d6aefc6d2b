// Command zaplogrus writes zap's production JSON lines and logrus' JSONFormatter lines, the
// golden inputs of the zap and logrus dialects (tests/data/dialects/zap.log, logrus.log).
// Built in GOPATH mode against Debian's packaged sources (golang-go.uber-zap-dev,
// golang-github-sirupsen-logrus-dev), as tests/data/dialects/generate.py does.
package main

import (
	"errors"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"go.uber.org/zap"
)

func main() {
	time.Local = time.FixedZone("CET", 3600)
	if len(os.Args) > 1 && os.Args[1] == "logrus" {
		l := logrus.New()
		l.SetOutput(os.Stdout)
		l.SetFormatter(&logrus.JSONFormatter{})
		l.SetLevel(logrus.TraceLevel)
		l.Trace("cache probe")
		l.Debug("cache warmed")
		l.WithFields(logrus.Fields{"order_id": 17, "traceId": "4BF92F3577B34DA6A3CE929D0E0E4736", "spanId": "00F067AA0BA902B7"}).Info("order fetched")
		l.WithField("dependency", "inventory").Warn("slow dependency")
		l.WithError(errors.New("card expired")).Error("payment declined")
		l.WithField("service", "orders").Info("service field set by the program")
		return
	}
	cfg := zap.NewProductionConfig() // ts in epoch seconds, lower-case levels, caller
	cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	z, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	defer func() { _ = z.Sync() }()
	z.Debug("cache warmed", zap.Int("entries", 42))
	z.Info("order fetched", zap.Int("order_id", 17), zap.String("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), zap.String("span_id", "00f067aa0ba902b7"))
	z.Warn("slow dependency", zap.Duration("took", 1500*time.Millisecond))
	z.Error("payment declined", zap.Error(errors.New("card expired")))
	z.With(zap.String("service", "orders")).Info("service field set by the program")
	z.DPanic("invariant broken") // logs at dpanic; panics only in development mode
}
