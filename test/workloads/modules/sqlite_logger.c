// sqlite_logger: a sensor logger on SQLite, the size of module a real edge
// application ships (SQLite 3.46's amalgamation, about 1 MB of Wasm). It
// stores READINGS synthetic readings of two sensors in a table, in one
// transaction, then prints one line per sensor (count and mean): its first
// output is the moment its work is done.
//
//   sqlite_logger DATABASE READINGS   DATABASE is a file (in a volume) or
//                                     :memory:
//
// Built by test/workloads/build.rs with `clang --target=wasm32-wasi` from the
// amalgamation the libsqlite3-sys crate ships (see build.rs).
#include <stdio.h>
#include <stdlib.h>

#include "sqlite3.h"

static int fail(sqlite3 *db, const char *what) {
    fprintf(stderr, "sqlite_logger: %s: %s\n", what, sqlite3_errmsg(db));
    sqlite3_close(db);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: sqlite_logger DATABASE READINGS\n");
        return 2;
    }
    int readings = atoi(argv[2]);
    sqlite3 *db = NULL;
    sqlite3_stmt *insert = NULL, *summary = NULL;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) return fail(db, argv[1]);
    if (sqlite3_exec(db,
                     "CREATE TABLE IF NOT EXISTS readings(t INTEGER, sensor TEXT, value REAL);"
                     "BEGIN;",
                     NULL, NULL, NULL) != SQLITE_OK)
        return fail(db, "create");
    if (sqlite3_prepare_v2(db, "INSERT INTO readings VALUES(?, ?, ?)", -1, &insert, NULL) !=
        SQLITE_OK)
        return fail(db, "prepare insert");
    for (int i = 0; i < readings; i++) {
        sqlite3_bind_int(insert, 1, i);
        sqlite3_bind_text(insert, 2, i % 2 ? "temperature" : "humidity", -1, SQLITE_STATIC);
        sqlite3_bind_double(insert, 3, (i * 37 % 100) / 4.0);
        if (sqlite3_step(insert) != SQLITE_DONE) return fail(db, "insert");
        sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    if (sqlite3_exec(db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK) return fail(db, "commit");
    if (sqlite3_prepare_v2(db,
                           "SELECT sensor, count(*), avg(value) FROM readings "
                           "GROUP BY sensor ORDER BY sensor",
                           -1, &summary, NULL) != SQLITE_OK)
        return fail(db, "prepare summary");
    while (sqlite3_step(summary) == SQLITE_ROW)
        printf("%s count=%d mean=%.2f\n", (const char *)sqlite3_column_text(summary, 0),
               sqlite3_column_int(summary, 1), sqlite3_column_double(summary, 2));
    sqlite3_finalize(summary);
    sqlite3_close(db);
    return 0;
}
