import CZstd

/// zstd compression of small sections (the tokenizer) and of expert levels.
public enum Zstd {
    /// Compresses `input` at `level`.
    public static func compress(_ input: [UInt8], level: Int32 = 19) throws(FormatError) -> [UInt8] {
        var result: Result<[UInt8], FormatError> = .success([])
        input.withUnsafeBytes { i in
            do throws(FormatError) { result = .success(try compress(i, level: level)) } catch {
                result = .failure(error)
            }
        }
        return try result.get()
    }

    /// Compresses `input` at `level` into a new array (one frame, content size recorded).
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32) throws(FormatError) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            ZSTD_compress(o.baseAddress, bound, input.baseAddress, input.count, level)
        }
        if ZSTD_isError(n) != 0 {
            throw .invalidArgument("zstd compression failed: \(String(cString: ZSTD_getErrorName(n)))")
        }
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses one frame whose content size is recorded, refusing anything above `limit` bytes.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int, what: String) throws(FormatError)
        -> [UInt8]
    {
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > UInt64(limit) {
            throw .corrupt(path: what, what: "zstd frame header is invalid")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        var failure: FormatError?
        out.withUnsafeMutableBytes { o in
            do throws(FormatError) { try decompress(input, into: o, what: what) } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }

    /// Decompresses one frame into exactly `output.count` bytes; anything else (a frame of another
    /// size, damaged data) is a `.corrupt` error naming `what`. Allocates nothing.
    public static func decompress(
        _ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, what: String
    ) throws(FormatError) {
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        guard size == UInt64(output.count) else {
            throw .corrupt(path: what, what: "zstd frame holds \(size) bytes, expected \(output.count)")
        }
        let n = ZSTD_decompress(output.baseAddress, output.count, input.baseAddress, input.count)
        if ZSTD_isError(n) != 0 || n != output.count {
            throw .corrupt(path: what, what: "zstd data does not decompress")
        }
    }
}
