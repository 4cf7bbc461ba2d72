// libpq, the PostgreSQL client library, loaded when a postgresql:// store is opened rather
// than linked: seqpipe builds and runs on SQLite where libpq is not installed, and only the
// PostgreSQL store (SeqPipeline's PostgreSQLConnection) touches these entry points. The
// declarations are libpq-fe.h's, for the calls used.
#ifndef SEQ_CPOSTGRESQL_SHIM_H
#define SEQ_CPOSTGRESQL_SHIM_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef unsigned int Oid;

enum { CSEQ_CONNECTION_OK = 0 };
enum { CSEQ_PGRES_COMMAND_OK = 1, CSEQ_PGRES_TUPLES_OK = 2 };
enum { CSEQ_PG_DIAG_SQLSTATE = 'C', CSEQ_PG_DIAG_MESSAGE_PRIMARY = 'M' };

typedef void (*cseq_pq_notice_processor)(void *arg, const char *message);

typedef struct cseq_pg_notify {
    char *relname;
    int be_pid;
    char *extra;
    struct cseq_pg_notify *next;
} cseq_pg_notify;

struct cseq_libpq {
    PGconn *(*PQconnectdb)(const char *conninfo);
    int (*PQstatus)(const PGconn *conn);
    char *(*PQerrorMessage)(const PGconn *conn);
    void (*PQfinish)(PGconn *conn);
    PGresult *(*PQexec)(PGconn *conn, const char *query);
    PGresult *(*PQexecParams)(PGconn *conn, const char *command, int nParams, const Oid *paramTypes,
                              const char *const *paramValues, const int *paramLengths, const int *paramFormats,
                              int resultFormat);
    PGresult *(*PQprepare)(PGconn *conn, const char *stmtName, const char *query, int nParams, const Oid *paramTypes);
    PGresult *(*PQexecPrepared)(PGconn *conn, const char *stmtName, int nParams, const char *const *paramValues,
                                const int *paramLengths, const int *paramFormats, int resultFormat);
    int (*PQresultStatus)(const PGresult *res);
    char *(*PQresultErrorMessage)(const PGresult *res);
    char *(*PQresultErrorField)(const PGresult *res, int fieldcode);
    int (*PQntuples)(const PGresult *res);
    int (*PQnfields)(const PGresult *res);
    char *(*PQfname)(const PGresult *res, int field_num);
    Oid (*PQftype)(const PGresult *res, int field_num);
    int (*PQgetisnull)(const PGresult *res, int tup_num, int field_num);
    char *(*PQgetvalue)(const PGresult *res, int tup_num, int field_num);
    char *(*PQcmdTuples)(PGresult *res);
    void (*PQclear)(PGresult *res);
    cseq_pq_notice_processor (*PQsetNoticeProcessor)(PGconn *conn, cseq_pq_notice_processor proc, void *arg);
    int (*PQsocket)(const PGconn *conn);
    int (*PQconsumeInput)(PGconn *conn);
    cseq_pg_notify *(*PQnotifies)(PGconn *conn);
    void (*PQfreemem)(void *ptr);
};

static inline void cseq_pq_ignore_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/// Loads libpq.so.5 once. Returns the entry points, or NULL with the reason in `error`.
static inline const struct cseq_libpq *cseq_libpq_load(char *error, size_t size) {
    static struct cseq_libpq api;
    static int loaded = 0;
    if (loaded) return &api;
    void *library = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(error, size, "%s", dlerror());
        return NULL;
    }
#define CSEQ_PQ(name)                                                   \
    do {                                                                \
        *(void **)(&api.name) = dlsym(library, #name);                  \
        if (!api.name) {                                                \
            snprintf(error, size, "libpq.so.5 has no %s", #name);       \
            return NULL;                                                \
        }                                                               \
    } while (0)
    CSEQ_PQ(PQconnectdb);
    CSEQ_PQ(PQstatus);
    CSEQ_PQ(PQerrorMessage);
    CSEQ_PQ(PQfinish);
    CSEQ_PQ(PQexec);
    CSEQ_PQ(PQexecParams);
    CSEQ_PQ(PQprepare);
    CSEQ_PQ(PQexecPrepared);
    CSEQ_PQ(PQresultStatus);
    CSEQ_PQ(PQresultErrorMessage);
    CSEQ_PQ(PQresultErrorField);
    CSEQ_PQ(PQntuples);
    CSEQ_PQ(PQnfields);
    CSEQ_PQ(PQfname);
    CSEQ_PQ(PQftype);
    CSEQ_PQ(PQgetisnull);
    CSEQ_PQ(PQgetvalue);
    CSEQ_PQ(PQcmdTuples);
    CSEQ_PQ(PQclear);
    CSEQ_PQ(PQsetNoticeProcessor);
    CSEQ_PQ(PQsocket);
    CSEQ_PQ(PQconsumeInput);
    CSEQ_PQ(PQnotifies);
    CSEQ_PQ(PQfreemem);
#undef CSEQ_PQ
    loaded = 1;
    return &api;
}

/// Notices (a migration's "relation already exists, skipping") are not the store's output.
static inline void cseq_pq_quiet(const struct cseq_libpq *api, PGconn *conn) {
    api->PQsetNoticeProcessor(conn, cseq_pq_ignore_notice, NULL);
}

#endif
