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
    /// An expert could not be loaded (I/O error, short file, checksum mismatch).
    case expertLoad(layer: Int, expert: Int, bits: Int, problem: String)
    /// The memory budget cannot hold what the session needs.
    case budgetTooSmall(String)

    public var description: String {
        switch self {
        case .format(let e): return e.description
        case .io(let e): return e.description
        case .config(let path, let problem): return "\(path): \(problem)"
        case .unsupportedArchitecture(let a):
            return
                "unsupported architecture '\(a)' (supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .invalidArgument(let s): return s
        case .contextFull(let limit): return "context is full: the session holds at most \(limit) tokens"
        case .tokenizer(let s): return "tokenizer: \(s)"
        case .expertLoad(let layer, let expert, let bits, let problem):
            return "cannot load layer \(layer) expert \(expert) at \(bits) bits: \(problem)"
        case .budgetTooSmall(let s): return "memory budget too small: \(s)"
        }
    }
}
