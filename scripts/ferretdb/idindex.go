// FerretDB 1.24's SQLite backend builds each collection's unique `_id` index on
// `_ferretdb_sjson->"_id"` but looks a document up by `_ferretdb_sjson->'$._id'`; SQLite
// matches index expressions as written, so every find by `_id` scanned the table
// (docs/decisions/0002-retry-path.md). The launcher rebuilds that index on the look-up's
// expression: the same values, the same name and uniqueness, now used by look-ups.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses, registered as "sqlite"
)

// idIndexSuffix ends the name of FerretDB's `_id` index on a collection's table.
const idIndexSuffix = "__id_"

// idLookupExpression is the expression FerretDB's `_id` look-ups filter on.
const idLookupExpression = "_ferretdb_sjson->'$._id'"

// idLookupPeriod is how soon a new collection gets its look-up index: while its table is
// still small, so creating the index holds SQLite's write lock only briefly.
const idLookupPeriod = time.Second

// idLookupIndexes rebuilds the `_id` index of every collection table of every database in
// dir on the expression FerretDB's `_id` look-ups use. It runs once before FerretDB serves
// (a large existing table is indexed before anyone waits on it), then every
// idLookupPeriod until ctx ends, for collections created meanwhile.
type idLookupIndexes struct {
	dir    string
	logger *slog.Logger
	dbs    map[string]*sql.DB
}

func newIDLookupIndexes(sqliteURL string, logger *slog.Logger) (*idLookupIndexes, error) {
	u, err := url.Parse(sqliteURL)
	if err != nil || u.Scheme != "file" {
		return nil, fmt.Errorf("bad --sqlite-url %q: want file:DIR/", sqliteURL)
	}
	dir := u.Opaque
	if dir == "" {
		dir = u.Path
	}
	return &idLookupIndexes{dir: dir, logger: logger, dbs: map[string]*sql.DB{}}, nil
}

// ensure rebuilds every `_id` index not yet on the look-up's expression; errors are logged
// and retried on the next pass (a collection dropped meanwhile, a busy database).
func (x *idLookupIndexes) ensure(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	for _, file := range files {
		if err := x.ensureIn(ctx, file); err != nil {
			x.logger.Warn("cannot add the _id look-up index", "db", file, "error", err)
		}
	}
}

func (x *idLookupIndexes) ensureIn(ctx context.Context, file string) error {
	db, ok := x.dbs[file]
	if !ok {
		var err error
		// Same pragmas as FerretDB's own connections: wait for its writers, never block them long.
		db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(1)
		x.dbs[file] = db
	}
	rows, err := db.QueryContext(ctx, `SELECT c.table_name FROM _ferretdb_collections c
		JOIN sqlite_master m ON m.type = 'index' AND m.name = c.table_name || ?
		WHERE instr(m.sql, ?) = 0`, idIndexSuffix, idLookupExpression)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil // a database FerretDB has not set up yet
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, table)
	}
	rows.Close()
	for _, table := range tables {
		started := time.Now()
		if err := rebuildIDIndex(ctx, db, table); err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		x.logger.Warn("rebuilt the _id index for look-ups", "db", filepath.Base(file), "table", table, "took", time.Since(started))
	}
	return nil
}

// rebuildIDIndex swaps the table's `_id` index for one on the look-up's expression in one
// transaction, so FerretDB's writers never see the table without a unique `_id` index.
func rebuildIDIndex(ctx context.Context, db *sql.DB, table string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	index := table + idIndexSuffix
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`DROP INDEX %q`, index)); err != nil {
		return err
	}
	q := fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (%s)`, index, table, idLookupExpression)
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return err
	}
	return tx.Commit()
}

// run keeps ensuring until ctx ends.
func (x *idLookupIndexes) run(ctx context.Context) {
	ticker := time.NewTicker(idLookupPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, db := range x.dbs {
				db.Close()
			}
			return
		case <-ticker.C:
			x.ensure(ctx)
		}
	}
}
