import PipelineStore
import PipelineModel
import SeqDatabase
/// `seqpipe --help`: man/seqpipe.1 documents every option in it (DocumentationTests checks).
public enum SeqPipelineHelp {
    public static let text = overview + PipelineCommand.commandsSection + "\n\n" + reference

    static let overview = """
        OVERVIEW: seqpipe - a device-automation pipeline on the seqguard guards

        Jobs ("post video X with caption Y to account Z") wait in one store: an SQLite file, or
        PostgreSQL for a farm of several hosts. 'seqpipe run' holds the store's single-instance
        lock and runs N workers, each with its own device and ports; every step a job runs goes
        through the guard (time limit, memory limit, whole process tree ended). Failures are
        classed permanent, infrastructure or retryable; nothing is lost and nothing is posted
        twice when any process is killed: each attempt holds locks (beside the store) that its
        processes inherit, and a job is taken back only once they are free.

        USAGE: seqpipe [--db PATH] [--config PATH] COMMAND [ARGS...]
               seqpipe --help | --version

        COMMANDS:

        """

    static let reference = """
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
