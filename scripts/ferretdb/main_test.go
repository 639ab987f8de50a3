// Tests of the launcher's log handler: what it must keep from slog's TextHandler (the same
// text for records that are written) and what it must drop (formatting for records that are not).
package main

import (
	"bytes"
	"log/slog"
	"testing"
)

// countedValue counts how often a handler resolves it, i.e. formats it.
type countedValue struct{ resolved *int }

func (v countedValue) LogValue() slog.Value {
	*v.resolved++
	return slog.StringValue("document")
}

func textHandler(out *bytes.Buffer) slog.Handler {
	dropTime := func(_ []string, attr slog.Attr) slog.Attr {
		if attr.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return attr
	}
	return slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: dropTime})
}

func TestWithFormatsNothingForADisabledRecord(t *testing.T) {
	var out bytes.Buffer
	resolved := 0
	logger := slog.New(deferredAttrs{base: textHandler(&out)})

	logger.With(slog.Any("args", countedValue{&resolved})).Debug(">>> INSERT")
	if resolved != 0 || out.Len() != 0 {
		t.Fatalf("a debug record below warn resolved its attributes %d times and wrote %q", resolved, out.String())
	}

	// The same attribute on a record that is written is formatted, once.
	logger.With(slog.Any("args", countedValue{&resolved})).Warn("slow")
	if resolved != 1 || !bytes.Contains(out.Bytes(), []byte("args=document")) {
		t.Fatalf("a warn record resolved its attributes %d times and wrote %q", resolved, out.String())
	}
}

func TestWrittenRecordsReadAsTextHandlersOwn(t *testing.T) {
	log := func(handler slog.Handler) {
		parent := slog.New(handler).With("conn", 7).WithGroup("handler")
		database := parent.With("db", "voteflow")
		// Siblings derived from one logger must not see each other's groups or attributes.
		sqlite := database.WithGroup("sqlite")
		deadLetters := database.With("table", "dead_letters")
		sqlite.Warn("busy", "table", "votes", "ms", 12)
		deadLetters.Warn("busy", "ms", 3)
		parent.With("db", "other").Error("failed", "err", "disk full")
		slog.New(handler).WithGroup("").Warn("no group")
	}

	var want, got bytes.Buffer
	log(textHandler(&want))
	log(deferredAttrs{base: textHandler(&got)})
	if got.String() != want.String() {
		t.Fatalf("deferred handler wrote\n%s\nTextHandler wrote\n%s", got.String(), want.String())
	}
	if !bytes.Contains(got.Bytes(), []byte("conn=7 handler.db=voteflow handler.sqlite.table=votes handler.sqlite.ms=12")) {
		t.Fatalf("groups or attributes out of order: %s", got.String())
	}
}
