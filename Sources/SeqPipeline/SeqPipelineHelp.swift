import PipelineStore
import PipelineModel
/// `seqpipe --help`: man/seqpipe.1 documents every option in it (DocumentationTests checks).
public enum SeqPipelineHelp {
    public static let text = """
        OVERVIEW: seqpipe - a device-automation pipeline on the seqguard guards

        Jobs ("post video X with caption Y to account Z") wait in one store: an SQLite file, or
        PostgreSQL for a farm of several hosts. 'seqpipe run' holds the store's single-instance
        lock and runs N workers, each with its own device and ports; every step a job runs goes
        through the guard (time limit, memory limit, whole process tree ended). Failures are
        classed permanent, infrastructure or retryable; nothing is lost and nothing is posted
        twice when any process is killed: each attempt holds locks (beside the store) that its
        processes inherit, and a job is taken back only once they are free.

        USAGE: seqpipe [--db PATH] [--config PATH] COMMAND [ARGS...]

        COMMANDS:
          init                          Create the store and a default pipeline.json.
          device add NAME [--url URL] [--health CMD] [--server ARGV] [--server-restart CMD]
                     [--restart CMD] [--stop CMD] [--host NAME]
                                        --server: the device's server (Appium), which its
                                        worker starts, restarts and ends itself. --host: the
                                        farm host that drives it (PostgreSQL store: default
                                        this machine's name).
          device list | device remove NAME [--force]
                                        --force: a device in use is drained first (its
                                        worker finishes its job, then stops).
          account add NAME [--daily-limit N]
          account list | account resume NAME
          add-job --account A [--id ID] [--video PATH] [--caption TEXT] [--field KEY=VALUE]...
                  [--priority P] [--max-attempts N]
                                        --priority: P0 (first) to P3, high, normal, low,
                                        or a number (higher first).
          add-folder DIR --accounts A [B...] [--priority P] [--max-attempts N]
          import-csv FILE | export-csv [FILE]
          seed [--folder DIR]... [--accounts A [B...]] [--csv FILE]... [--export FILE]
                                        Create or refresh the store (and the progress CSV
                                        with --export) from folders and CSVs; nothing runs.
          run [--workers N] [--once] [--host NAME]
                                        Run N workers (default: one per device of this host);
                                        --once: exit when nothing is left to do; --host: this
                                        machine's name in a farm. run --seed-only (the
                                        original's spelling) is seed.
          status [--json | --watch]     Counts, the queue and its time to empty, workers,
                                        accounts and devices with their success rates, and
                                        why jobs wait; --watch redraws it every 2 s.
          jobs [--status S] [--account A] [--device D] [--error TYPE] [--search TEXT] [--json]
                                        The jobs, filtered.
          show JOB [--json]             One job: its fields, payload, events, why it waits.
          events [--since T] [--limit N] [--json]
                                        What happened: the latest N (default 50), or all
                                        since T (2026-11-23T10:00:00Z, epoch seconds, or an
                                        age: 90s, 15m, 2h, 1d).
          show-config                   Ports per worker, steps and policies.
          schedule [--minutes N]        The recurring jobs' first runs after start, in order.
          serve [--listen HOST:PORT] [--allow-actions] [--token-file FILE]
                                        A live dashboard of the store in a browser (default
                                        127.0.0.1:8080), JSON under /api/, and /metrics.
          stop-all                      Stop the running orchestrator and its workers cleanly.
          retry JOB | cancel JOB

        OPTIONS:
          --db PATH|URL       The store (default: .seqpipe/pipeline.db), or a farm's
                              PostgreSQL store: postgresql://USER@HOST/DB.
          --config PATH       The pipeline definition (default: pipeline.json beside the store).
          -h, --help          Show this help; after a command, that command's usage.
                              Options go before or after the command; a value
                              attaches with = (--db=PATH).
          --version           Show the version.

        ENVIRONMENT:
          SEQPIPE_DB          The store, when --db is not given (a URL with a password
                              belongs here, not on a command line).
          SEQPIPE_HOST        This machine's name in a farm, when run --host is not given.
          SEQPIPE_CONFIG      The pipeline definition, when --config is not given.

        EXIT STATUS:
          0    Done.
          1    The command could not do what was asked (no such job, job running, ...).
          2    Bad usage.
          75   Another orchestrator holds the store.
          125  seqpipe itself failed: bad config, unreadable store, missing device, the
               store file deleted or replaced under the run.

        """
}
