import Foundation

/// The loader's read throughput on a file: random aligned reads of one block size at one queue
/// depth through the same reader the expert cache uses (as fio's `randread` does). `sparrow
/// iobench` prints it; `bench` measures it beside a budgeted run for the I/O roofline.
package enum ReadBandwidth {
    /// What one measurement read.
    package struct Result: Codable, Sendable {
        package var blockSize: Int
        package var queueDepth: Int
        package var bytes: Int
        package var seconds: Double
        /// What read the bytes ("io_uring, O_DIRECT, fixed buffers", "pread ×8, O_DIRECT").
        package var reader: String
        package var bytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds : 0 }
    }

    /// Reads `total` bytes (at least one block) of `path` in `blockSize` blocks at random aligned
    /// offsets inside `range` (default: the whole file), `queueDepth` in flight, with `options`
    /// (mode, O_DIRECT). It reads into `buffer` when given (aligned, at least `blockSize ×
    /// queueDepth` bytes), else into as much memory of its own, freed after.
    package static func measure(
        path: String, range: Range<Int>? = nil, blockSize: Int, queueDepth: Int, total: Int,
        options: BlockReaderOptions, buffer: UnsafeMutableRawBufferPointer? = nil
    ) throws(IOError) -> Result {
        let a = BlockReaderOptions.alignment
        let region = range ?? 0..<((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        let first = (region.lowerBound + a - 1) / a * a
        let blocks = (region.upperBound - first) / blockSize
        guard blockSize > 0, blockSize % a == 0, queueDepth > 0, blocks > 0 else {
            throw IOError(path: path, operation: "measure reads of \(blockSize) bytes", errno: EINVAL)
        }
        let base = try memory(buffer, bytes: blockSize * queueDepth, path: path)
        defer { if buffer == nil { free(base) } }
        var o = options
        o.queueDepth = queueDepth
        let reader = try BlockReaders.open(
            path: path, arena: UnsafeMutableRawBufferPointer(start: base, count: blockSize * queueDepth),
            tags: queueDepth,
            options: o)
        // A fresh sequence each run: a repeated one would find the host's cache warm.
        var rng = UInt64.random(in: 1...UInt64.max)
        func nextOffset() -> Int {
            rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return first + Int((rng >> 33) % UInt64(blocks)) * blockSize
        }
        let count = max(1, total / blockSize)
        let start = DispatchTime.now().uptimeNanoseconds
        var issued = 0
        for t in 0..<min(queueDepth, count) {
            reader.enqueue(
                ReadRequest(offset: nextOffset(), length: blockSize, destination: base + t * blockSize, tag: t))
            issued += 1
        }
        try reader.submit()
        var done = 0
        while done < count {
            guard let tag = try reader.next() else { continue }
            try reader.wait(tag: tag)  // its error, if any
            done += 1
            if issued < count {
                // Submitted by the `next()` that would block: reads finished together go in one batch.
                reader.enqueue(
                    ReadRequest(offset: nextOffset(), length: blockSize, destination: base + tag * blockSize, tag: tag))
                issued += 1
            }
        }
        return Result(
            blockSize: blockSize, queueDepth: queueDepth, bytes: count * blockSize,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, reader: reader.summary)
    }

    /// `buffer`'s start when it is aligned and holds `bytes`, else (no buffer) `bytes` of aligned
    /// memory the caller frees.
    private static func memory(
        _ buffer: UnsafeMutableRawBufferPointer?, bytes: Int, path: String
    ) throws(IOError) -> UnsafeMutableRawPointer {
        let a = BlockReaderOptions.alignment
        if let buffer {
            guard let b = buffer.baseAddress, Int(bitPattern: b) % a == 0, buffer.count >= bytes else {
                throw IOError(path: path, operation: "measure into a buffer of \(buffer.count) bytes", errno: EINVAL)
            }
            return b
        }
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, a, bytes) == 0, let p = pointer else {
            throw IOError(path: path, operation: "allocate \(bytes) bytes", errno: ENOMEM)
        }
        return p
    }
}
