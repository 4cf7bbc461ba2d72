#define _GNU_SOURCE
#include "CSeqSystem.h"
#include <stdint.h>
#include <stdlib.h>

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
