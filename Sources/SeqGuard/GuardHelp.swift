/// seqexec's and make-seq's `--help`: the fixed prose here, the OPTIONS and ENVIRONMENT lines
/// made from `GuardOptions`' declarations.
public enum GuardHelp {
    public static let version = "0.1.0"

    public static var seqexec: String {
        """
        OVERVIEW: Run a command under a per-project lock: one at a time, in arrival order,
        under a memory limit over its whole process tree, after other git operations of the
        repository have finished, leaving no process, lock or queue line behind.

        USAGE: seqexec [OPTIONS] [--] COMMAND [ARG...]
               seqexec --status [--json]
               seqexec --history [-n N] [--json]
               seqexec --kill-all
               seqexec --submit [OPTIONS] [--] COMMAND [ARG...]
               seqexec --wait ID [-w S] [--tail]
               seqexec --runs [--json]
               seqexec --cancel ID
               seqexec --mcp
               seqexec --completion bash|zsh|fish
               seqexec --help | --version

        OPTIONS:
          A duration S is seconds (30, 2.5) or takes units: 500ms, 90s, 10m, 1h30m.

        """ + GuardOptions.seqexec.helpLines + """

        ENVIRONMENT:
          A flag beats the environment. Only SEQEXEC_ names are read; the original
          tooling's bare names (TIMEOUT, VERBOSE, MEMORY_LIMIT_MB, CHECK_INTERVAL) only
          under the migration shims in scripts/ (SEQEXEC_LEGACY_NAMES=1).

        """ + GuardOptions.settings.environmentLines(prefix: "SEQEXEC_") + """
          SEQEXEC_TOKENS                    Set by seqexec for the command it runs, so a
                                            nested seqexec of the same project runs
                                            straight through instead of waiting for itself.
          SEQEXEC_FENCE                     Set by seqexec for a command holding a --store
                                            lock: a token that grows with every hand-over,
                                            for the resource to refuse a stale holder.

        EXIT STATUS:
          N        the command's own exit status
          128+N    the command died of signal N (130 after Ctrl-C)
          124      the command timed out (--timeout)
          137      the memory monitor ended the command (--memory-limit); a stderr
                   line says so, or says it was the kernel's OOM killer or a kill -9
          75       gave up waiting for the lock (--wait-timeout), for memory
                   (--min-available), or for another git operation (--git-wait)
          76       replaced while waiting by a newer run (--order newest-first),
                   or ended running by one asking --cancel-running
          77       a shared lock's lease could not be renewed: the command's
                   tree was ended before another host could take the lock
          125      seqexec itself failed: bad usage, unsafe or unusable state, a
                   stale git lock file, or its supervisor was killed (a line names
                   the command, which runs on unsupervised, holding the lock)
          126      the command could not be executed
          127      the command was not found

        """
    }

    public static var makeSeq: String {
        let names = wrapped(GuardOptions.settings.environmentNames.joined(separator: ", ") + """
            . A MAKE_SEQ_ name beats the SEQEXEC_ one. The original bare names (TIMEOUT, VERBOSE, ...) \
            are read only under the migration shims (SEQEXEC_LEGACY_NAMES=1).
            """, width: 46)
        return """
            OVERVIEW: Run make under the project's guard: one make of the project at a time, in
            arrival order, each also excluding every other guarded command of the project, under
            seqexec's memory limit, timeout and process-tree cleanup. A waiting make is told its
            place in the queue.

            USAGE: make-seq [MAKE ARGUMENT...]
                   make-seq -- [MAKE ARGUMENT...]
                   make-seq --status [--json]
                   make-seq --kill-all
                   make-seq --history [-n N] [--json]
                   make-seq --mcp
                   make-seq --completion bash|zsh|fish
                   make-seq --help | --version

            OPTIONS:
              Every argument goes to make untouched, unless the first is one of these.

            """ + GuardOptions.makeSeq.helpLines + """
                  --                  Pass everything after it to make, even --help.
              The project is the nearest directory holding .git at or above the one make
              runs in (make's -C DIR, else the current directory), else that directory.

            ENVIRONMENT:
              MAKE_SEQ_MAKE                     The make program to run (default: make).
              MAKE_SEQ_<NAME>, SEQEXEC_<NAME>   Every setting of seqexec(1) by its name:

            """ + names.map { String(repeating: " ", count: 36) + $0 + "\n" }.joined() + """
              MAKE_SEQ_LEVEL                    Set by make-seq for the make it runs: the
                                                MAKELEVEL at which seq.mk runs targets as
                                                usual instead of handing them to make-seq.
              SEQEXEC_TOKENS                    Set by make-seq for make, so that a nested
                                                make-seq or seqexec of the project runs
                                                straight through instead of waiting for itself.

            EXIT STATUS:
              N        make's own exit status (2 when a target failed)
              128+N    make died of signal N (130 after Ctrl-C)
              124      make timed out (TIMEOUT)
              137      the memory monitor ended make's tree (MEMORY_LIMIT_MB)
              75       gave up waiting for the lock (WAIT_TIMEOUT) or for memory
              76       replaced while waiting by a newer make (ORDER=newest-first),
                       or ended running by one asking CANCEL_RUNNING
              77       a shared lock's lease could not be renewed (STORE)
              125      make-seq itself failed: bad setting, unsafe or unusable state
              126      the make program could not be executed
              127      the make program was not found

            """
    }
}
