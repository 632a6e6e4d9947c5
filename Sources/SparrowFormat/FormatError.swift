/// Everything that can be wrong with a file Sparrow reads or writes.
///
/// Each case carries enough context (path, tensor, layer, expert) for a message a user can act on.
public enum FormatError: Error, CustomStringConvertible, Equatable {
    case io(path: String, operation: String, errno: Int32)
    case truncated(path: String, expected: UInt64, actual: UInt64)
    case badMagic(path: String)
    case unsupportedVersion(path: String, version: UInt32, supported: UInt32)
    case corrupt(path: String, what: String)
    case checksumMismatch(path: String, what: String)
    case missingTensor(path: String, name: String)
    case badTensor(path: String, name: String, problem: String)
    case outputExists(path: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .io(let path, let op, let e):
            return "\(path): \(op) failed: \(String(cString: strerror(e))) (errno \(e))"
        case .truncated(let path, let expected, let actual):
            return "\(path): file is truncated: expected at least \(expected) bytes, found \(actual)"
        case .badMagic(let path):
            return "\(path): not a Sparrow model file (bad magic)"
        case .unsupportedVersion(let path, let v, let s):
            return "\(path): format version \(v) is not supported (this build reads version \(s))"
        case .corrupt(let path, let what):
            return "\(path): corrupt file: \(what)"
        case .checksumMismatch(let path, let what):
            return "\(path): checksum mismatch in \(what): the file is corrupt"
        case .missingTensor(let path, let name):
            return "\(path): missing tensor '\(name)'"
        case .badTensor(let path, let name, let problem):
            return "\(path): tensor '\(name)': \(problem)"
        case .outputExists(let path):
            return "\(path) already exists (pass --force to overwrite it)"
        case .invalidArgument(let s):
            return s
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
