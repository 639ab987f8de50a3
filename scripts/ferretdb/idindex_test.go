// Tests of the `_id` index rebuild on a SQLite file laid out as FerretDB 1.24 lays out a
// collection (its metadata table, the collection's table and its `_id` index as it writes them).
package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

func ferretdbLikeDatabase(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "votes_db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE _ferretdb_collections (name TEXT, table_name TEXT, settings TEXT)`,
		`INSERT INTO _ferretdb_collections VALUES ('votes', 'votes_a357ea92', '{}')`,
		`CREATE TABLE "votes_a357ea92" (_ferretdb_sjson TEXT NOT NULL CHECK(_ferretdb_sjson != '')) STRICT`,
		`CREATE UNIQUE INDEX "votes_a357ea92__id_" ON "votes_a357ea92" (_ferretdb_sjson->"_id")`,
		`INSERT INTO "votes_a357ea92" VALUES ('{"_id":"a"}'), ('{"_id":"b"}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

// plan is SQLite's plan for FerretDB's look-up by `_id`.
func plan(t *testing.T, db *sql.DB) string {
	t.Helper()
	var id, parent, notused int
	var detail string
	// A real read first: EXPLAIN alone does not notice a schema another connection changed.
	if _, err := db.Exec(`SELECT count(*) FROM "votes_a357ea92"`); err != nil {
		t.Fatal(err)
	}
	q := `EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "votes_a357ea92" WHERE _ferretdb_sjson->'$._id' = ?`
	if err := db.QueryRow(q, `"b"`).Scan(&id, &parent, &notused, &detail); err != nil {
		t.Fatal(err)
	}
	return detail
}

func TestTheIDIndexIsRebuiltForLookUpsAndStaysUnique(t *testing.T) {
	dir := t.TempDir()
	db := ferretdbLikeDatabase(t, dir)
	if detail := plan(t, db); !strings.HasPrefix(detail, "SCAN") {
		t.Fatalf("FerretDB's own index already serves the look-up (%s): the rebuild is not needed", detail)
	}

	indexes, err := newIDLookupIndexes("file:"+dir+"/", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	indexes.ensure(context.Background())
	indexes.ensure(context.Background()) // a second pass finds nothing to do

	if detail := plan(t, db); !strings.Contains(detail, `USING INDEX votes_a357ea92__id_`) {
		t.Fatalf("the look-up does not use the rebuilt index: %s", detail)
	}
	_, err = db.Exec(`INSERT INTO "votes_a357ea92" VALUES ('{"_id":"a","again":true}')`)
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("a second document with _id a was not refused as a unique violation: %v", err)
	}
	var rebuilt int
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'votes_a357ea92'`
	if err := db.QueryRow(q).Scan(&rebuilt); err != nil || rebuilt != 1 {
		t.Fatalf("want exactly one index on the table, found %d (%v)", rebuilt, err)
	}
}

func TestASQLiteURLThatIsNotADirectoryIsRefused(t *testing.T) {
	for _, url := range []string{"memory:", "http://host/dir/"} {
		if _, err := newIDLookupIndexes(url, slog.Default()); err == nil {
			t.Errorf("%q was accepted", url)
		}
	}
}
