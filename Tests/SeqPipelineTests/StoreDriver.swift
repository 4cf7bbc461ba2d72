@testable import PipelineModel
@testable import SeqPipeline
import SeqDatabase
import SeqSystem
import Testing
import TestSupport

/// The two stores the contract tests run against: SQLite in a temporary directory, and
/// PostgreSQL in a schema of its own on the server SEQPIPE_TEST_PG names (scripts/with-postgres
/// starts one for `make test`). Without that server the PostgreSQL cases are not run and
/// `postgreSQLServerForTheContractTests` says so as a skipped test.
enum StoreDriver: String, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgresql

    static var postgresURL: String? {
        guard let url = Spawn.environmentValue("SEQPIPE_TEST_PG"), !url.isEmpty else { return nil }
        return url
    }

    static var all: [StoreDriver] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgresql] }

    var testDescription: String { rawValue }

    /// A fresh store with devices d0…d(n-1); kept alive (and its schema or directory) by `place`.
    func makeStore(_ place: StorePlace, devices: Int = 2) throws -> SQLJobStore {
        let store = try SQLJobStore.open(place.location, create: true)
        try store.migrate()
        for index in 0..<devices { try store.addDevice(Device(name: "d\(index)")) }
        return store
    }

    /// Where one test's store lives; removed when the test lets go of it.
    func place() throws -> StorePlace { try StorePlace(self) }
}

/// A test's store location: a temporary directory, or a PostgreSQL schema dropped at the end.
final class StorePlace {
    let location: String
    let directory: TemporaryDirectory?
    let schema: String?

    init(_ driver: StoreDriver) throws {
        switch driver {
        case .sqlite:
            let directory = TemporaryDirectory()
            self.directory = directory
            schema = nil
            location = directory.path + "/pipeline.db"
        case .postgresql:
            let url = try #require(StoreDriver.postgresURL)
            let name = "t_" + Processes.randomHex(bytes: 6)
            let admin = try PostgreSQLConnection(url: url)
            try admin.execute("CREATE SCHEMA \(name)")
            directory = nil
            schema = name
            location = url + (url.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(name)"
        }
    }

    deinit {
        if let schema, let url = StoreDriver.postgresURL, let admin = try? PostgreSQLConnection(url: url) {
            try? admin.execute("DROP SCHEMA \(schema) CASCADE")
        }
    }
}

@Suite struct StoreDriverTests {
    @Test(.enabled(if: StoreDriver.postgresURL != nil,
                   "SEQPIPE_TEST_PG is not set: the store's contract tests ran on SQLite only (run 'make test', which starts a PostgreSQL server when one is installed)"))
    func postgreSQLServerForTheContractTests() throws {
        let place = try StoreDriver.postgresql.place()
        let store = try StoreDriver.postgresql.makeStore(place)
        #expect(store.dialect == .postgresql)
        #expect(try store.devices().count == 2)
    }

    @Test func aURLHidesItsPassword() {
        #expect(PostgreSQLConnection.redacted("postgresql://farm:s3cret@db.example:5432/seqpipe") == "postgresql://farm:***@db.example:5432/seqpipe")
        #expect(PostgreSQLConnection.redacted("postgresql:///seqpipe?host=/tmp&password=s3cret&user=x") == "postgresql:///seqpipe?host=/tmp&password=***&user=x")
        #expect(PostgreSQLConnection.redacted("postgresql://farm@db/seqpipe") == "postgresql://farm@db/seqpipe")
    }

    @Test func aServerThatIsNotThereIsOneLineNamingTheURL() throws {
        do {
            _ = try SQLJobStore.open("postgresql://farm:s3cret@127.0.0.1:9/seqpipe?connect_timeout=2")
            Issue.record("connected to nothing")
        } catch {
            #expect(error.message.hasPrefix("cannot connect to postgresql://farm:***@127.0.0.1:9/seqpipe") || error.message.contains("libpq is not installed"), "\(error.message)")
            #expect(!error.message.contains("s3cret"))
            #expect(!error.message.contains("\n"))
        }
    }
}
