// The system's libsqlite3 (Debian: libsqlite3-dev). Only SeqPipeline's store uses it.
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot import.
static inline sqlite3_destructor_type cseq_sqlite_transient(void) { return SQLITE_TRANSIENT; }
