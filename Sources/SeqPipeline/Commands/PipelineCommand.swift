import PipelineStore
import PipelineModel
import SeqDatabase
import PipelineRuntime
import SeqGuard
import SeqSystem

/// One command of seqpipe, declared once: its name, its own options (the global ones come
/// on top), its lines in `--help`'s COMMANDS (which `seqpipe CMD --help` shows too), and
/// what it does. A hidden command is started by `seqpipe run` or a script, never typed.
public struct PipelineCommand: Sendable {
    public var name: String
    public var options: [OptionSpec]
    public var hidden: Bool
    /// Its lines of `--help`'s COMMANDS section, as shown ("" when another's lines name it).
    public var help: String
    let run: @Sendable (Invocation) -> Void

    init(_ name: String, options: [OptionSpec], hidden: Bool, run: @escaping @Sendable (Invocation) -> Void, help: String) {
        self.name = name
        self.options = options
        self.hidden = hidden
        self.run = run
        self.help = help
    }

    /// Options every command takes, before or after its name.
    public static let globalOptions = [OptionSpec("--db", kind: .value), OptionSpec("--config", kind: .value), OptionSpec("-h", "--help"), OptionSpec("--version")]

    /// What seeding takes: folders (each file a job over the accounts in turn) and CSVs.
    /// The job filters `jobs`, `retry` and `cancel` take.
    static let jobFilters = [OptionSpec("--status", kind: .value), OptionSpec("--account", kind: .value), OptionSpec("--device", kind: .value),
                             OptionSpec("--error", kind: .value), OptionSpec("--search", kind: .value)]
    static let seedOptions = [OptionSpec("--folder", kind: .value), OptionSpec("--accounts", kind: .values), OptionSpec("--csv", kind: .value),
                              OptionSpec("--export", kind: .value), OptionSpec("--priority", kind: .value), OptionSpec("--max-attempts", kind: .value)]

    /// Every command, in the order `--help` lists them.
    public static let all: [PipelineCommand] = [
        PipelineCommand("init", options: [], hidden: false, run: { $0.initializeCommand() },
                        help: """
              init                          Create the store and a default pipeline.json.
            """),
        PipelineCommand("device", options: [OptionSpec("--url", kind: .value), OptionSpec("--health", kind: .value), OptionSpec("--server", kind: .value), OptionSpec("--server-restart", kind: .value), OptionSpec("--restart", kind: .value), OptionSpec("--stop", kind: .value), OptionSpec("--host", kind: .value), OptionSpec("--force")], hidden: false, run: { $0.deviceCommand() },
                        help: """
              device add NAME [--url URL] [--health CMD] [--server ARGV] [--server-restart CMD]
                         [--restart CMD] [--stop CMD] [--host NAME]
                                            --server: the device's server (Appium), which its
                                            worker starts, restarts and ends itself. --host: the
                                            farm host that drives it (PostgreSQL store: default
                                            this machine's name).
              device list | device remove NAME [--force]
                                            --force: a device in use is drained first (its
                                            worker finishes its job, then stops).
              device pause NAME | device resume NAME | device release NAME
                                            Pause: its worker finishes its job, then claims
                                            nothing until resumed. Release: end a hold (after
                                            trouble or a busy port) now.
            """),
        PipelineCommand("account", options: [OptionSpec("--daily-limit", kind: .value)], hidden: false, run: { $0.accountCommand() },
                        help: """
              account add NAME [--daily-limit N]
              account list | account resume NAME
            """),
        PipelineCommand("add-job", options: [OptionSpec("--account", kind: .value), OptionSpec("--id", kind: .value), OptionSpec("--video", kind: .value), OptionSpec("--caption", kind: .value), OptionSpec("--priority", kind: .value), OptionSpec("--max-attempts", kind: .value), OptionSpec("--field", kind: .value)], hidden: false, run: { $0.addJobCommand() },
                        help: """
              add-job --account A [--id ID] [--video PATH] [--caption TEXT] [--field KEY=VALUE]...
                      [--priority P] [--max-attempts N]
                                            --priority: P0 (first) to P3, high, normal, low,
                                            or a number (higher first).
            """),
        PipelineCommand("add-folder", options: [OptionSpec("--accounts", kind: .values), OptionSpec("--priority", kind: .value), OptionSpec("--max-attempts", kind: .value)], hidden: false, run: { $0.addFolderCommand() },
                        help: """
              add-folder DIR --accounts A [B...] [--priority P] [--max-attempts N]
            """),
        PipelineCommand("import-csv", options: [], hidden: false, run: { $0.importCsvCommand() },
                        help: """
              import-csv FILE | export-csv [FILE]
                                            The CSV (RFC 4180; times ISO 8601 UTC) needs a
                                            header; the smallest is job_id,account,video_path,caption
                                            and any further column is a field of the job ({KEY} in
                                            steps). export-csv writes the original's progress
                                            columns: job_id, account, video_path, caption, status,
                                            worker_id, claimed_at, completed_at, error, attempts,
                                            max_attempts, retry_at, error_type; then priority (P0-P3)
                                            and one per field, which import-csv reads back. Every bad
                                            row is reported as FILE:LINE: why (exit 1), and then
                                            nothing is imported.
            """),
        PipelineCommand("export-csv", options: [], hidden: false, run: { $0.exportCsvCommand() }, // shown with import-csv
                        help: ""),
        PipelineCommand("seed", options: PipelineCommand.seedOptions, hidden: false, run: { $0.seedCommand() },
                        help: """
              seed [--folder DIR]... [--accounts A [B...]] [--csv FILE]... [--export FILE]
                                            Create or refresh the store (and the progress CSV
                                            with --export) from folders and CSVs; nothing runs.
            """),
        PipelineCommand("run", options: [OptionSpec("--workers", kind: .value), OptionSpec("--once"), OptionSpec("--seed-only"), OptionSpec("--host", kind: .value)] + PipelineCommand.seedOptions, hidden: false, run: { $0.runCommand() },
                        help: """
              run [--workers N] [--once] [--host NAME]
                                            Run N workers (default: one per device of this host);
                                            --once: exit when nothing is left to do; --host: this
                                            machine's name in a farm. run --seed-only (the
                                            original's spelling) is seed.
            """),
        PipelineCommand("status", options: [OptionSpec("--json"), OptionSpec("--watch")], hidden: false, run: { $0.statusCommand() },
                        help: """
              status [--json | --watch]     Counts, the queue and its time to empty, workers,
                                            accounts and devices with their success rates, and
                                            why jobs wait; --watch redraws it every 2 s.
            """),
        PipelineCommand("jobs", options: Self.jobFilters + [OptionSpec("--json")], hidden: false, run: { $0.jobsCommand() },
                        help: """
              jobs [--status S] [--account A] [--device D] [--error TYPE] [--search TEXT] [--json]
                                            The jobs, filtered.
            """),
        PipelineCommand("show", options: [OptionSpec("--json")], hidden: false, run: { $0.showCommand() },
                        help: """
              show JOB [--json]             One job: its fields, payload, events, why it waits.
            """),
        PipelineCommand("events", options: [OptionSpec("--limit", kind: .value), OptionSpec("--since", kind: .value), OptionSpec("--json")], hidden: false, run: { $0.eventsCommand() },
                        help: """
              events [--since T] [--limit N] [--json]
                                            What happened: the latest N (default 50), or all
                                            since T (2026-11-23T10:00:00Z, epoch seconds, or an
                                            age: 90s, 15m, 2h, 1d).
            """),
        PipelineCommand("show-config", options: [], hidden: false, run: { $0.showConfigCommand() },
                        help: """
              show-config                   Ports per worker, steps and policies of the config
                                            the store holds.
            """),
        PipelineCommand("config", options: [], hidden: false, run: { $0.configCommand() },
                        help: """
              config load [FILE] | config set KEY VALUE | config show [VERSION] | config versions
                                            The config a run uses lives in the store, in numbered
                                            versions (every host of a farm reads the same one):
                                            load FILE (default: pipeline.json) or set one KEY
                                            (workers.idle_poll_seconds) to make the next version;
                                            'seqpipe run' loads pipeline.json when it differs.
            """),
        PipelineCommand("schedule", options: [OptionSpec("--minutes", kind: .value)], hidden: false, run: { $0.scheduleCommand() },
                        help: """
              schedule [--minutes N]        The recurring jobs' first runs after start, in order.
            """),
        PipelineCommand("serve", options: [OptionSpec("--listen", kind: .value), OptionSpec("--allow-actions"), OptionSpec("--token-file", kind: .value)], hidden: false, run: { $0.serveCommand() },
                        help: """
              serve [--listen HOST:PORT] [--allow-actions] [--token-file FILE]
                                            A live dashboard of the store in a browser (default
                                            127.0.0.1:8080), JSON under /api/, and /metrics.
            """),
        PipelineCommand("stop-all", options: [], hidden: false, run: { $0.stopAllCommand() },
                        help: """
              stop-all                      Stop the running orchestrator and its workers cleanly.
            """),
        PipelineCommand("completion", options: [], hidden: false, run: { $0.completionCommand() },
                        help: """
              completion bash|zsh|fish      Print seqpipe's completion script for that shell.
            """),
        PipelineCommand("retry", options: Self.jobFilters, hidden: false, run: { $0.retryOrCancel() },
                        help: """
              retry JOB... | retry [--status S] [--account A] [--device D] [--error TYPE] [--search TEXT]
              cancel JOB... | cancel [--status S] [--account A] [--device D] [--error TYPE] [--search TEXT]
                                            Retry: a failed, cancelled or retrying job goes back
                                            to pending with a fresh budget of attempts. Cancel: a
                                            pending, retrying or failed one. With filters, every
                                            job they match, and one line counting what changed.
            """),
        PipelineCommand("cancel", options: Self.jobFilters, hidden: false, run: { $0.retryOrCancel() }, // shown with retry
                        help: ""),
        PipelineCommand("worker", options: MemberOrders.options(for: .worker), hidden: true, run: { $0.workerCommand() },
                        help: ""),
        PipelineCommand("device-server", options: MemberOrders.options(for: .deviceServer), hidden: true, run: { $0.deviceServerCommand() },
                        help: ""),
        PipelineCommand("scheduler", options: MemberOrders.options(for: .scheduler), hidden: true, run: { $0.schedulerCommand() },
                        help: ""),
        PipelineCommand("recurring-run", options: MemberOrders.options(for: .recurringRun), hidden: true, run: { $0.recurringRunCommand() },
                        help: ""),
        PipelineCommand("bench-claims", options: [OptionSpec("--claimers", kind: .value), OptionSpec("--member", kind: .value)], hidden: true, run: { $0.benchClaimsCommand() },
                        help: ""),
    ]

    public static func named(_ name: String) -> PipelineCommand? { all.first { $0.name == name } }

    /// The COMMANDS section of `--help`: every command that is not hidden, as declared.
    static var commandsSection: String {
        all.filter { !$0.hidden && !$0.help.isEmpty }.map(\.help).joined(separator: "\n")
    }
}
