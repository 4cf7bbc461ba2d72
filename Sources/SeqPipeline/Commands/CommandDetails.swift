import SeqDatabase

/// What `seqpipe COMMAND --help` says beyond the command's lines in `seqpipe --help`: each
/// of its options, the formats it reads or writes, and how it exits. Kept here, apart from
/// the declarations, so `--help`'s overview stays one screen; a test checks that every
/// option a command declares is named in its details.
extension PipelineCommand {
    /// Exit statuses every command shares (seqpipe(1), EXIT STATUS).
    static let exits = """
        EXIT: 0 done; 1 it could not do what was asked (said in one line); 2 bad usage;
        125 no store, or a bad config.
        """

    /// Its details; a command shown with another in `--help` (cancel with retry, export-csv
    /// with import-csv) has that one's.
    var details: String { Self.details[name] ?? Self.details[Self.shownWith[name] ?? ""] ?? "" }

    static let shownWith = ["cancel": "retry", "export-csv": "import-csv"]

    static let details: [String: String] = [
        "init": """
            Creates .seqpipe/pipeline.db and a pipeline.json with every default (or, with
            SEQPIPE_DB=postgresql://..., the schema in that database), and loads the config
            as version 1. Run again, it keeps what exists.
            \(exits)
            """,
        "device": """
            OPTIONS (device add):
              --url URL             status URL its worker asks before each job (placeholders
                                    {appium_port} {system_port} {worker} {device})
              --health CMD          a shell command instead of --url: exit 0 is healthy
              --server ARGV         the device's server, which its worker runs itself
              --server-restart CMD  restarts a server run elsewhere (first grade of recovery)
              --restart CMD         restarts the device (second grade)
              --stop CMD            stops the phone when its worker stops
              --host NAME           the farm host that drives it (PostgreSQL store)
            OPTIONS (device remove):
              --force               drain a device in use first: its job finishes, then it goes
            pause, resume and release say what they found ("was already paused; nothing
            changed") and are events naming who asked. No such device: exit 1.
            \(exits)
            """,
        "account": """
            OPTIONS (account add):
              --daily-limit N       successful jobs a day at most (0: no limit), days in day_zone
            resume unpauses an account paused by a permanent error and clears its cooldown;
            one that is neither is left as it is ("nothing changed", exit 0).
            \(exits)
            """,
        "add-job": """
            OPTIONS:
              --account A           the account it posts as (created as needed); required
              --id ID               its id (default: a fresh one, printed)
              --video PATH          the payload field video ({video} in steps)
              --caption TEXT        the payload field caption ({caption})
              --field KEY=VALUE     any other field ({KEY}); repeat for more
              --priority P          P0 (first) to P3, high, normal, low, or a whole number
              --max-attempts N      its budget of charged attempts (default: the config's)
            A job lacking a field some step needs is refused when added (exit 1).
            \(exits)
            """,
        "add-folder": """
            OPTIONS:
              --accounts A [B...]   the accounts, taken in turn; required
              --priority P          P0 (first) to P3, high, normal, low, or a whole number
              --max-attempts N      each job's budget of charged attempts
            One job per media file (mp4 mov m4v avi mkv webm jpg jpeg png gif) in name order;
            the caption is FILE.txt beside it; a file already queued is skipped.
            \(exits)
            """,
        "import-csv": """
            A header, then one job a row:   job_id,account,video_path,caption[,KEY...]
            Progress columns export-csv writes and import-csv reads: job_id, account,
            video_path, caption, status, worker_id, claimed_at, completed_at, error, attempts,
            max_attempts, retry_at, error_type, priority; times YYYY-MM-DDTHH:MM:SSZ (UTC).
            A claimed or running row comes back pending. Every bad row is reported as
            FILE:LINE: why, then how many; nothing is imported then (exit 1).
            \(exits)
            """,
        "seed": """
            OPTIONS:
              --folder DIR          a folder of media files (repeat for more)
              --accounts A [B...]   the accounts a folder's jobs are spread over
              --csv FILE            a progress CSV (repeat for more)
              --export FILE         write the progress CSV of the whole store there too
              --priority P          P0 (first) to P3, high, normal, low, or a whole number
              --max-attempts N      each new job's budget of charged attempts
            Nothing runs; a job already in the store is kept as it is.
            \(exits)
            """,
        "run": """
            OPTIONS:
              --workers N           workers to start (default: one per device of this host)
              --once                exit 0 when nothing is left that can run
              --host NAME           this machine's name in a farm (default: its host name)
              --seed-only, --folder, --accounts, --csv, --export, --priority, --max-attempts
                                    the original's spelling of seed: seed, then exit
            Stops cleanly on SIGINT, SIGTERM or 'seqpipe stop-all'.
            EXIT: 0 done or stopped; 75 another orchestrator holds the store; 125 bad config,
            no device, or the store went away.
            """,
        "status": """
            OPTIONS:
              --json                the same as /api/status (queue, runnable_now,
                                    orchestrator_runs, time_to_empty_seconds, queue_outlook...)
              --watch               redraw every 2 s until interrupted
            \(exits)
            """,
        "jobs": """
            OPTIONS (every filter given must match):
              --status S            pending claimed running success failed retrying cancelled
              --account A, --device D, --error TYPE (suspended, infrastructure, poison, ...)
              --search TEXT         text in the id, account, error or a payload field
              --json                the same as /api/jobs
            Columns: JOB ACCOUNT STATUS PRIORITY (P0-P3) DEVICE ATTEMPT (n/limit) ERROR.
            \(exits)
            """,
        "show": """
            OPTIONS:
              --json                the same as /api/jobs/ID (with outputs: each step run's tail)
            "attempt: 5 of 7" is the fifth run; the limit is the budget plus runs not charged.
            No such job: exit 1.
            \(exits)
            """,
        "events": """
            OPTIONS:
              --since T             2026-11-23T10:00:00Z, epoch seconds, or an age: 90s 15m 2h 1d
              --limit N             at most N (default 50: the latest)
              --json                objects: at, at_seconds, kind, job, account, device, worker, message
            \(exits)
            """,
        "show-config": """
            The config this run uses, with its version, each worker's ports and the limits
            the guard puts on each step.
            \(exits)
            """,
        "config": """
            load [FILE]     a new version from FILE (default: pipeline.json), checked first
            set KEY VALUE   a new version with one key changed (workers.idle_poll_seconds 2)
            show [VERSION]  a version's text (default: the latest)
            versions        every version: when, from where
            A run and all its workers use the version they started with.
            \(exits)
            """,
        "schedule": """
            OPTIONS:
              --minutes N           how far ahead (default 60)
            \(exits)
            """,
        "serve": """
            OPTIONS:
              --listen HOST:PORT    where (default 127.0.0.1:8080; port 0 picks a free one)
              --allow-actions       serve the buttons' POSTs (retry, cancel, pause, resume,
                                    release, stop), each carrying the token
              --token-file FILE     the token (its first line); required beyond loopback
            Pages: /, /jobs/ID; JSON: /api/status, /api/jobs, /api/jobs/ID, /api/events,
            /api/throughput; /metrics in the Prometheus text format.
            EXIT: 0 stopped by a signal; 2 bad usage or a token file missing beyond loopback;
            125 the address cannot be listened on.
            """,
        "stop-all": """
            Waits until every process of the run is gone; SIGKILL for what is left after the
            grace times, each named.
            EXIT: 0 stopped (or nothing ran); 1 something still holds the store.
            """,
        "completion": """
            bash, zsh or fish: the script on stdout (make install installs all three).
            \(exits)
            """,
        "retry": """
            OPTIONS (instead of JOB..., at least one):
              --status S, --account A, --device D, --error TYPE, --search TEXT
                                    every job they all match, as 'seqpipe jobs' lists them
            Each job's line says what was found ("job j4 was already pending; nothing
            changed"); with filters, one line counts them. A claimed or running job belongs
            to its worker: exit 1 for it.
            \(exits)
            """,
    ]
}
