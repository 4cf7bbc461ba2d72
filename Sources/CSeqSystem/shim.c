#define _GNU_SOURCE
#include "CSeqSystem.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/falloc.h>
#include <sys/ioctl.h>

struct watch { int lock_fd; int notify_fd; };

static void *flock_watcher(void *arg) {
    struct watch w = *(struct watch *)arg;
    free(arg);
    // The waiter may have stopped listening by the time the lock goes: then the write below
    // fails with EPIPE instead of killing the whole process with SIGPIPE (a thread-directed
    // signal pending on a blocked mask is discarded when the thread ends).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    while (flock(w.lock_fd, LOCK_SH) != 0 && errno == EINTR) {}
    char byte = 1;
    while (write(w.notify_fd, &byte, 1) < 0 && errno == EINTR) {}
    close(w.lock_fd);
    return NULL;
}

int cseq_start_flock_watcher(int lock_fd, int notify_fd) {
    struct watch *w = malloc(sizeof *w);
    if (w == NULL) return ENOMEM;
    w->lock_fd = lock_fd;
    w->notify_fd = notify_fd;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, flock_watcher, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) free(w);
    return rc;
}

int cseq_execvpe(const char *file, char *const argv[], char *const envp[]) {
    return execvpe(file, argv, envp);
}

int cseq_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cseq_resolve(const char *host, const char *port, int timeout_ms, struct addrinfo **result) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    // An address needs no resolver.
    if (getaddrinfo(host, port, &hints, result) == 0) return 0;
    hints.ai_flags = AI_NUMERICSERV;
    struct gaicb *request = calloc(1, sizeof *request + sizeof hints);
    if (request == NULL) return EAI_MEMORY;
    struct addrinfo *request_hints = (struct addrinfo *)(request + 1);
    *request_hints = hints;
    request->ar_name = strdup(host);
    request->ar_service = strdup(port);
    request->ar_request = request_hints;
    struct gaicb *list[1] = { request };
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
    if (rc != 0) {
        free((char *)request->ar_name);
        free((char *)request->ar_service);
        free(request);
        return rc;
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
        long left = timeout_ms - spent;
        if (left <= 0) break;
        struct timespec limit = { left / 1000, (left % 1000) * 1000000L };
        rc = gai_suspend((const struct gaicb *const *)list, 1, &limit);
        if (rc != EAI_INTR) break;
    }
    rc = gai_error(request);
    if (rc == EAI_INPROGRESS) {
        // Still resolving: the resolver's thread owns the request until it is cancelled; one
        // it will not give up is left to it (a few bytes, once).
        if (gai_cancel(request) == EAI_CANCELED) {
            free((char *)request->ar_name);
            free((char *)request->ar_service);
            free(request);
        }
        return 1;
    }
    *result = request->ar_result;
    free((char *)request->ar_name);
    free((char *)request->ar_service);
    free(request);
    return rc;
}

int cseq_punch_hole(int fd, long long offset, long long length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

int cseq_terminal_columns(int fd) {
    struct winsize size;
    if (ioctl(fd, TIOCGWINSZ, &size) != 0) return 0;
    return size.ws_col;
}
