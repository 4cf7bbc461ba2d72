// seqpipe: reads the command line and runs the command it names. Each command is declared
// once, with its options, help and body, in SeqPipeline's PipelineCommand.all.

import SeqDatabase
import SeqGuard
import SeqPipeline
import SeqSystem

// A closed stdout or stderr (`| head`) must not kill the supervisor mid-run.
// Standard descriptors a caller closed are /dev/null before anything is opened.
FileDescriptor.makeStandardDescriptorsValid()
BrokenPipe.ignore()

Invocation.read(Array(CommandLine.arguments.dropFirst()), version: "0.1.0").run()
ProcessExit.now(0)
