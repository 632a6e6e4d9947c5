import CSparrowABI
import Foundation
import Sparrow

/// What a `sparrow_model *` stands for.
final class ModelHandle {
    let model: Model
    /// Sessions created from this handle and not yet freed (guarded by `Handles.lock`).
    var sessions = 0
    init(model: Model) { self.model = model }
}

/// What a `sparrow_session *` stands for: the session plus the C interface's own state (the last
/// logits, the sampler of `sparrow_session_sample`).
final class SessionHandle {
    let session: Session
    /// Keeps the model alive after `sparrow_model_close`.
    let owner: ModelHandle
    var logits: [Float] = []
    var sampler: Sampler?
    var samplerOptions: SamplingOptions?
    var history: [Int] = []
    init(session: Session, owner: ModelHandle) {
        self.session = session
        self.owner = owner
    }
}

/// The live handles. A C pointer is only dereferenced after it is found here, so NULL, a closed
/// or freed handle, or any other pointer is an error instead of a crash.
enum Handles {
    static let lock = NSLock()
    nonisolated(unsafe) private static var live: [UnsafeMutableRawPointer: AnyObject] = [:]

    static func add(_ object: AnyObject) -> OpaquePointer {
        let p = Unmanaged.passRetained(object).toOpaque()
        lock.withLock { live[p] = object }
        return OpaquePointer(p)
    }

    /// The object behind `pointer` if it is a live handle of type `T`.
    static func find<T: AnyObject>(_ pointer: OpaquePointer?, as: T.Type) -> T? {
        guard let pointer else { return nil }
        return lock.withLock { live[UnsafeMutableRawPointer(pointer)] as? T }
    }

    /// Ends a handle; false when it was not a live handle of type `T`. `body` runs under the lock.
    static func remove<T: AnyObject>(_ pointer: OpaquePointer?, as: T.Type, _ body: (T) -> Void = { _ in }) -> Bool {
        guard let pointer else { return false }
        let p = UnsafeMutableRawPointer(pointer)
        let object: T? = lock.withLock {
            guard let o = live[p] as? T else { return nil }
            live[p] = nil
            body(o)
            return o
        }
        guard object != nil else { return false }
        Unmanaged<AnyObject>.fromOpaque(p).release()
        return true
    }
}

/// The live model behind `model`, or an invalid-handle failure.
func modelHandle(_ model: OpaquePointer?) throws(CFailure) -> ModelHandle {
    guard let h = Handles.find(model, as: ModelHandle.self) else { throw .invalidHandle("model") }
    return h
}

/// The live session behind `session`, or an invalid-handle failure.
func sessionHandle(_ session: OpaquePointer?) throws(CFailure) -> SessionHandle {
    guard let h = Handles.find(session, as: SessionHandle.self) else { throw .invalidHandle("session") }
    return h
}

/// A failed call: its status and message, stored as the thread's last error.
struct CFailure: Error {
    var status: sparrow_status
    var message: String
    init(_ status: sparrow_status, _ message: String) {
        self.status = status
        self.message = message
    }

    static func invalidHandle(_ what: String) -> CFailure {
        CFailure(SPARROW_ERR_INVALID_HANDLE, "\(what) is NULL, closed, or not a handle of this library")
    }

    static func null(_ what: String) -> CFailure { CFailure(SPARROW_ERR_INVALID_ARGUMENT, "\(what) is NULL") }

    /// The status of a runtime error.
    init(_ error: SparrowError) {
        let status: sparrow_status
        switch error {
        case .format(let f):
            if case .io = f { status = SPARROW_ERR_IO } else { status = SPARROW_ERR_FORMAT }
        case .io, .expertLoad: status = SPARROW_ERR_IO
        case .config: status = SPARROW_ERR_FORMAT
        case .unsupportedArchitecture: status = SPARROW_ERR_UNSUPPORTED
        case .invalidArgument, .tokenizer: status = SPARROW_ERR_INVALID_ARGUMENT
        case .contextFull: status = SPARROW_ERR_CONTEXT_FULL
        case .budgetTooSmall: status = SPARROW_ERR_BUDGET
        }
        self.init(status, error.description)
    }
}

/// Runs the body of a C entry point: clears the thread's last error, maps failures to a status
/// and message. Nothing thrown escapes into C.
func entry(_ body: () throws(CFailure) -> Void) -> sparrow_status {
    do {
        try body()
        spabi_set_error(nil)
        return SPARROW_OK
    } catch {
        spabi_set_error(error.message)
        return error.status
    }
}

/// Runs runtime code, turning its errors into failures.
func runtime<T>(_ body: () throws(SparrowError) -> T) throws(CFailure) -> T {
    do { return try body() } catch { throw CFailure(error) }
}

/// The `struct_size` values accepted for a params struct: its size in every release that shipped it.
/// 0.1.0 is the first release, so today that is the current size only; a release that appends fields
/// adds the older size here, and `readParams` fills the fields a smaller struct lacks from the defaults.
func shippedSizes<T>(of: T.Type) -> [Int] { [MemoryLayout<T>.size] }

/// Checks a params struct's `struct_size` against the sizes this library knows.
func checkSize<T>(_ size: Int, of: T.Type, _ name: String) throws(CFailure) {
    guard shippedSizes(of: T.self).contains(size) else {
        throw CFailure(
            SPARROW_ERR_INVALID_ARGUMENT,
            "\(name).struct_size is \(size), this library (\(SPARROW_VERSION_STRING)) expects \(MemoryLayout<T>.size): "
                + "initialise it with the *_default_params() function or sizeof")
    }
}

/// A caller's params struct: its `struct_size` (the first member of every params struct) is read
/// and checked first, then exactly that many bytes are copied over `defaults` — never more than the
/// caller declared, so a short struct is an error, not a read past its end.
func readParams<T>(_ params: UnsafePointer<T>?, defaults: T, _ name: String) throws(CFailure) -> T {
    guard let params else { return defaults }
    let size = UnsafeRawPointer(params).loadUnaligned(as: Int.self)
    try checkSize(size, of: T.self, name)
    var out = defaults
    withUnsafeMutableBytes(of: &out) { $0.copyMemory(from: UnsafeRawBufferPointer(start: params, count: size)) }
    return out
}

/// A `size_t` length or count from C (Swift sees it as `Int`): one above PTRDIFF_MAX (negative here)
/// cannot describe memory the caller has, and is an error naming its real value.
func cLength(_ value: Int, _ name: String) throws(CFailure) -> Int {
    guard value >= 0 else {
        throw CFailure(SPARROW_ERR_INVALID_ARGUMENT, "\(name) is \(UInt(bitPattern: value)), more than PTRDIFF_MAX")
    }
    return value
}

/// A `size_t` buffer capacity from C: one above PTRDIFF_MAX (SIZE_MAX: "large enough") is taken as
/// the largest `Int`, never as a negative size.
func cCapacity(_ value: Int) -> Int { value < 0 ? Int.max : value }

/// A JSON string the caller frees with `sparrow_string_free`.
func mallocString(_ s: String) -> UnsafeMutablePointer<CChar> { strdup(s)! }

func jsonString<T: Encodable>(_ value: T) throws(CFailure) -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys]
    do { return String(decoding: try e.encode(value), as: UTF8.self) } catch {
        throw CFailure(SPARROW_ERR_INTERNAL, "cannot encode JSON: \(error)")
    }
}
