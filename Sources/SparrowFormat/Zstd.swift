import CZstd

/// zstd compression of small sections (the tokenizer) and, later, expert levels.
public enum Zstd {
    /// Compresses `input` at `level`.
    public static func compress(_ input: [UInt8], level: Int32 = 19) throws(FormatError) -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            input.withUnsafeBytes { i in
                ZSTD_compress(o.baseAddress, bound, i.baseAddress, i.count, level)
            }
        }
        if ZSTD_isError(n) != 0 {
            throw .invalidArgument("zstd compression failed: \(String(cString: ZSTD_getErrorName(n)))")
        }
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses one frame whose content size is recorded, refusing anything above `limit` bytes.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int, what: String) throws(FormatError) -> [UInt8] {
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        if size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > UInt64(limit) {
            throw .corrupt(path: what, what: "zstd frame header is invalid")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let n = out.withUnsafeMutableBytes { o in
            ZSTD_decompress(o.baseAddress, o.count, input.baseAddress, input.count)
        }
        if ZSTD_isError(n) != 0 || n != Int(size) {
            throw .corrupt(path: what, what: "zstd data does not decompress")
        }
        return out
    }
}
