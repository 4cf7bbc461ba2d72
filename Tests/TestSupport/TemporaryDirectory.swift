import Glibc

/// A temporary directory of a test, removed when the test ends, pass or fail. The one helper
/// for this; end-to-end tests have their Sandbox, which holds one of these per test.
public final class TemporaryDirectory {
    public let path: String

    public init(prefix: String = "seqguard-test") {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    deinit { _ = system("rm -rf '\(path)'") }
}
