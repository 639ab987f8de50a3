// Command voteflow-ferretdb runs FerretDB 1.x (a MongoDB-wire server on SQLite) for the
// local stack: the vote log's stand-in for mongod on machines that cannot install one.
// It embeds FerretDB's public `ferretdb` package because `go install` of its own command
// fails from the module proxy (its generated version file is not in the module zip).
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to serve the MongoDB wire protocol on")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite directory URI holding one file per database (must end with /)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("bad --log-level: %v", err)
	}
	logger := slog.New(deferredAttrs{base: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})

	server, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		log.Fatalf("cannot start FerretDB: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	indexes, err := newIDLookupIndexes(*sqliteURL, logger)
	if err != nil {
		log.Fatal(err)
	}
	indexes.ensure(ctx)
	go indexes.run(ctx)
	logger.Warn("serving the MongoDB wire protocol", "addr", *listenAddr, "sqlite", *sqliteURL)
	if err := server.Run(ctx); err != nil {
		log.Fatalf("FerretDB stopped: %v", err)
	}
}

// deferredAttrs keeps the attributes and groups of Logger.With until a record is actually
// written. slog's TextHandler formats them at With() time, and FerretDB's SQLite layer calls
// With(args) before every statement to log it at debug level: with debug off that formatted
// every inserted document as quoted text for nothing (~13 % of FerretDB's CPU under the
// vote log's insert_many, seen with pprof).
type deferredAttrs struct {
	base  slog.Handler
	steps []withStep // applied in order, only for records that are enabled
}

// withStep is one WithGroup (group set) or one WithAttrs call (attrs set).
type withStep struct {
	group string
	attrs []slog.Attr
}

func (h deferredAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h deferredAttrs) Handle(ctx context.Context, record slog.Record) error {
	handler := h.base
	for _, step := range h.steps {
		if step.group != "" {
			handler = handler.WithGroup(step.group)
		} else {
			handler = handler.WithAttrs(step.attrs)
		}
	}
	return handler.Handle(ctx, record)
}

func (h deferredAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.with(withStep{attrs: attrs})
}

func (h deferredAttrs) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(withStep{group: name})
}

func (h deferredAttrs) with(step withStep) deferredAttrs {
	// Capped at its length, the parent's slice is copied on append: loggers derived from
	// one parent never write into each other's steps.
	return deferredAttrs{base: h.base, steps: append(h.steps[:len(h.steps):len(h.steps)], step)}
}
