// swift-tools-version:6.0
import PackageDescription

// No package dependencies, on purpose: seqexec wraps every build command a person runs and
// must start about as fast as flock(1). Release builds link the Swift runtime statically
// (`make build`, or `swift build -c release --static-swift-stdlib`).
let package = Package(
    name: "seqguard",
    products: [
        .executable(name: "seqexec", targets: ["seqexec"]),
        .executable(name: "make-seq", targets: ["make-seq"]),
        .executable(name: "seqpipe", targets: ["seqpipe"]),
        .library(name: "SeqGuard", targets: ["SeqGuard"]),
        .library(name: "SeqPipeline", targets: ["SeqPipeline"]),
    ],
    targets: [
        // The few libc entry points Swift cannot call directly (variadic or raw syscalls).
        .target(name: "CSeqSystem"),
        // The syscall layer: the only module that calls libc.
        .target(name: "SeqSystem", dependencies: ["CSeqSystem"]),
        // libpq's entry points, loaded at run time by the PostgreSQL connection only (a build
        // needs neither libpq nor its headers; a run that never opens a postgresql:// URL never
        // loads it).
        .systemLibrary(name: "CPostgreSQL", path: "Sources/CPostgreSQL"),
        // The one database layer: a connection (SQLDatabase; PostgreSQL's here), its errors
        // and outages, the migration runner. The pipeline's store and the guard's named locks
        // across machines both stand on it.
        .target(name: "SeqDatabase", dependencies: ["SeqSystem", "CPostgreSQL"]),
        // Project, lock, queue, supervision: testable Swift over SeqSystem.
        .target(name: "SeqGuard", dependencies: ["SeqSystem", "SeqDatabase"]),
        // The system's libsqlite3; only SeqPipeline's store touches it.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // The device pipeline: a client of SeqGuard (its lock, its supervised steps).
        // The pipeline's model: jobs, devices, accounts, states, the outcome policy, the
        // config, placeholders, the failure classifier. Values and pure decisions; no store,
        // no process.
        .target(name: "PipelineModel", dependencies: ["SeqDatabase", "SeqGuard", "SeqSystem"]),
        // Where the model is kept: the JobStore protocol, one SQL store over SQLite or
        // PostgreSQL (SQLDatabase), its migrations, the store file's lock.
        .target(name: "PipelineStore", dependencies: ["PipelineModel", "SeqDatabase", "SeqGuard", "SeqSystem", "CSQLite"]),
        // What runs: the orchestrator, workers, the scheduler, steps, fences, notifications,
        // device servers, over the store and the model.
        .target(name: "PipelineRuntime", dependencies: ["PipelineStore", "PipelineModel", "SeqDatabase", "SeqGuard", "SeqSystem"]),
        // What people and programs see and do: status, listings, CSV, seeding, the web page,
        // Prometheus metrics, the commands' help.
        .target(name: "SeqPipeline", dependencies: ["PipelineRuntime", "PipelineStore", "PipelineModel", "SeqDatabase", "SeqGuard", "SeqSystem"]),
        .executableTarget(name: "seqpipe", dependencies: ["SeqPipeline", "SeqDatabase", "SeqGuard", "SeqSystem"]),
        .executableTarget(name: "seqexec", dependencies: ["SeqGuard", "SeqSystem"]),
        .executableTarget(name: "make-seq", dependencies: ["SeqGuard", "SeqSystem"]),
        // The tests' one helper for temporary directories.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SeqSystemTests", dependencies: ["SeqSystem"]),
        .testTarget(name: "SeqGuardTests", dependencies: ["SeqGuard", "SeqDatabase", "SeqSystem", "TestSupport"]),
        .testTarget(name: "SeqPipelineTests", dependencies: ["PipelineModel", "PipelineStore", "SeqDatabase", "PipelineRuntime", "SeqPipeline", "SeqGuard", "SeqSystem", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["SeqSystem"]),
    ],
    swiftLanguageModes: [.v6]
)
