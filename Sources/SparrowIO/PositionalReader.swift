#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error while moving bytes from storage.
public struct IOError: Error, CustomStringConvertible, Equatable {
    /// The file.
    public let path: String
    /// What failed (open, read, fstat…).
    public let operation: String
    /// The system's error number.
    public let errno: Int32
    public var description: String {
        "\(path): \(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }

    /// The error `errno` of `operation` on `path`.
    public init(path: String, operation: String, errno: Int32) {
        self.path = path
        self.operation = operation
        self.errno = errno
    }
}

/// Reads byte ranges of a file with pread(2): short reads are resumed, EINTR and EAGAIN retried,
/// a read past the end of the file is an error. The portable path the io_uring loader falls back to.
package struct PositionalReader: Sendable {
    package let fileDescriptor: Int32
    package let path: String
    /// Faults to inject into reads (tests of the error paths; nil in production).
    package let faults: FaultInjector?

    package init(fileDescriptor: Int32, path: String, faults: FaultInjector? = nil) {
        self.fileDescriptor = fileDescriptor
        self.path = path
        self.faults = faults
    }

    /// Fills `buffer` with the bytes at `offset`.
    package func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(IOError) {
        let progress = ReadProgress(path: path, verb: "pread", isDirect: false)
        let request = ReadRequest(offset: offset, length: buffer.count, destination: buffer.baseAddress!, tag: 0)
        var done = 0
        while done < buffer.count {
            let n = pread(fileDescriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            let result = ReadProgress.inject(faults, request, done: done, result: n < 0 ? -Int(errno) : n)
            switch progress.advance(&done, result: result, offset: offset, length: buffer.count) {
            case .again, .finished: continue
            case .failed(let error): throw error
            }
        }
    }
}
