import SparrowFormat
import SparrowIO

/// Errors from the runtime: bad checkpoints, bad files, bad requests.
public enum SparrowError: Error, CustomStringConvertible {
    case format(FormatError)
    case io(IOError)
    case config(path: String, problem: String)
    case unsupportedArchitecture(String)
    case invalidArgument(String)
    case contextFull(limit: Int)
    case tokenizer(String)

    public var description: String {
        switch self {
        case .format(let e): return e.description
        case .io(let e): return e.description
        case .config(let path, let problem): return "\(path): \(problem)"
        case .unsupportedArchitecture(let a):
            return "unsupported architecture '\(a)' (supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .invalidArgument(let s): return s
        case .contextFull(let limit): return "context is full: the session holds at most \(limit) tokens"
        case .tokenizer(let s): return "tokenizer: \(s)"
        }
    }
}
