import SeqSystem

/// What seqexec and make-seq do before and while they read their arguments, the same way.
public enum ToolStart {
    /// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run: standard
    /// descriptors a caller closed are /dev/null before anything is opened, and SIGPIPE is
    /// ignored. Too few descriptors to read even the arguments is said as such (not as "no
    /// command given"), and the tool exits.
    public static func prepare(tool: String) {
        FileDescriptor.makeStandardDescriptorsValid()
        BrokenPipe.ignore()
        if let failure = GuardFailure.checkOpenFileLimit(tool: tool) {
            Reporter(toolName: tool).error(failure.message)
            ProcessExit.now(failure.exitCode)
        }
    }

    /// What `parse` read, or its failure in one line and the exit with its status.
    public static func parsed<T>(tool: String, _ parse: () throws(GuardFailure) -> T) -> T {
        do { return try parse() } catch {
            Reporter(toolName: tool).error(error.message)
            ProcessExit.now(error.exitCode)
        }
    }
}
