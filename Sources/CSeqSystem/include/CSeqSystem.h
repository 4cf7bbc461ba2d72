// The handful of libc entry points that Swift cannot call directly: variadic functions
// (open, prctl, syscall) and siginfo_t's union members. Nothing else belongs here.
#ifndef CSEQSYSTEM_H
#define CSEQSYSTEM_H

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/eventfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static inline int cseq_open(const char *path, int flags, mode_t mode) {
    return open(path, flags, mode);
}

static inline int cseq_openat(int dirfd, const char *path, int flags, mode_t mode) {
    return openat(dirfd, path, flags, mode);
}

static inline int cseq_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static inline int cseq_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static inline int cseq_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

static inline int cseq_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
}

/// statfs(2)'s f_type for `path` (following a /proc fd link), or -1.
static inline long cseq_filesystem_type(const char *path) {
    struct statfs fs;
    if (statfs(path, &fs) != 0) return -1;
    return (long)fs.f_type;
}

static inline int cseq_fcntl_setfl(int fd, int flags) {
    return fcntl(fd, F_SETFL, flags);
}

static inline int cseq_fcntl_getfl(int fd) {
    return fcntl(fd, F_GETFL);
}

static inline pid_t cseq_siginfo_pid(const siginfo_t *info) { return info->si_pid; }
static inline int cseq_siginfo_status(const siginfo_t *info) { return info->si_status; }
static inline int cseq_siginfo_code(const siginfo_t *info) { return info->si_code; }

static inline int cseq_errno(void) { return errno; }

/// The width of the terminal on `fd` in columns (TIOCGWINSZ), or 0 when it is none.
int cseq_terminal_columns(int fd);

/// fallocate(2) with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (a GNU extension).
int cseq_punch_hole(int fd, long long offset, long long length);

static inline int cseq_fd_clear_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
}

static inline int cseq_fd_set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

/// Starts a detached thread that blocks in flock(lock_fd, LOCK_SH) until no process holds an
/// exclusive lock on that file, then writes one byte to notify_fd and closes lock_fd.
/// This is how a waiter hears, from the kernel, that a holder and its whole tree are gone.
/// Returns 0, or an errno value if the thread could not be started.
int cseq_start_flock_watcher(int lock_fd, int notify_fd);

/// getaddrinfo(3) for a TCP host and port, bounded by `timeout_ms`: an address at once, a
/// name through getaddrinfo_a. Returns 0 with the list in `*result` (free it with
/// freeaddrinfo), 1 when the time ran out, or an EAI_ code.
int cseq_resolve(const char *host, const char *port, int timeout_ms, struct addrinfo **result);

/// pipe2(fds, O_CLOEXEC), a GNU extension.
int cseq_pipe_cloexec(int fds[2]);

/// execvpe(3), a GNU extension: exec with PATH search and an explicit environment.
int cseq_execvpe(const char *file, char *const argv[], char *const envp[]);

/// 1 if `sig` is ignored (SIG_IGN) in this process, else 0.
static inline int cseq_signal_is_ignored(int sig) {
    struct sigaction action;
    if (sigaction(sig, NULL, &action) != 0) return 0;
    return action.sa_handler == SIG_IGN ? 1 : 0;
}

#endif
