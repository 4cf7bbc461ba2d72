// The system's libsqlite3 (Debian: libsqlite3-dev). Only SeqPipeline's store uses it.
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import.
static inline sqlite3_destructor_type cseq_sqlite_transient(void) { return SQLITE_TRANSIENT; }

#include <stdint.h>
#include <unistd.h>

// A busy handler for short write transactions: SQLite's own (sqlite3_busy_timeout) sleeps
// 1, 2, 5, 10 ... 100 ms between tries, far longer than the few hundred microseconds a
// worker holds the write lock. This one sleeps 50 µs doubling to 2 ms, and gives up once
// the sleeps add up to the limit.
static int cseq_sqlite_busy(void *limit_ms, int count) {
    int64_t limit_us = (int64_t)(intptr_t)limit_ms * 1000;
    int64_t slept = 0;
    for (int i = 0; i < count && slept < limit_us; i++) slept += i < 6 ? (50 << i) : 2000;
    if (slept >= limit_us) return 0;
    usleep(count < 6 ? (50 << count) : 2000);
    return 1;
}

static inline int cseq_sqlite_busy_timeout(sqlite3 *db, int milliseconds) {
    return sqlite3_busy_handler(db, cseq_sqlite_busy, (void *)(intptr_t)milliseconds);
}
