import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a `.spw` file in one streaming pass: dense tensors, then expert records, then the
/// directories, tokenizer and meta, then the header. Bytes go to a temporary file beside the
/// destination which is renamed over it only by `finish`, so a crash never leaves a half file
/// under the final name and never touches what was there before.
package final class SPWWriter {
    package let destination: String
    package let temporaryPath: String
    private var fd: Int32
    private var position: Int
    private var tensors: [TensorEntry] = []
    private var expertLevels: [ExpertLevelLayout] = []
    private var experts: [ExpertRecordEntry] = []
    private var sections: [SectionEntry] = []
    private var denseStart = 0
    private var expertStart = 0
    private var finished = false

    /// Creates the temporary file. Does not look at `destination` (the caller decides about overwriting).
    package init(destination: String) throws(FormatError) {
        self.destination = destination
        self.temporaryPath = destination + ".tmp-\(getpid())"
        fd = TemporaryFiles.create(temporaryPath)
        if fd < 0 { throw .io(path: temporaryPath, operation: "create", errno: errno) }
        position = SPW.headerSize
        denseStart = position
    }

    deinit {
        if !finished { abandon() }
    }

    /// Deletes the temporary file; the destination is untouched.
    package func abandon() {
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(temporaryPath)
        TemporaryFiles.unregister(temporaryPath)
        finished = true
    }

    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FormatError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: temporaryPath, operation: "write", errno: errno)
            }
            done += n
        }
    }

    private func write(_ bytes: [UInt8], at offset: Int) throws(FormatError) {
        var failure: FormatError?
        bytes.withUnsafeBytes { b in
            do throws(FormatError) { try write(b, at: offset) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Appends a dense tensor (already in `dtype`, row-major, little-endian).
    package func addDense(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws(FormatError) {
        precondition(expertStart == 0, "dense tensors must be written before experts")
        guard bytes.count == dtype.bytes(count: shape.reduce(1, *)) else {
            throw .badTensor(path: destination, name: name, problem: "byte count does not match shape \(shape)")
        }
        position = SPW.align(position, SPW.tensorAlignment)
        try write(bytes, at: position)
        tensors.append(
            TensorEntry(
                name: name, dtype: dtype, shape: shape, offset: position, length: bytes.count, crc32c: crc32c(bytes)))
        position += bytes.count
    }

    /// Starts the expert section; every record that follows has the given level layout.
    package func beginExperts(levels: [ExpertLevelLayout]) {
        position = SPW.align(position, SPW.recordAlignment)
        sections.append(
            SectionEntry(kind: .dense, offset: UInt64(denseStart), length: UInt64(position - denseStart), checksum: 0))
        expertStart = position
        expertLevels = levels
    }

    /// Appends one expert record; `levels[k]` is the bytes stored for level k, encoded with
    /// `codecs[k]` (all raw when nil). The record is the concatenation, so levels 0...k stay a byte prefix.
    package func addExpert(
        layer: Int, expert: Int, levels: [UnsafeRawBufferPointer], codecs: [LevelCodec]? = nil
    ) throws(FormatError) {
        precondition(expertStart != 0, "beginExperts first")
        guard levels.count == expertLevels.count, codecs == nil || codecs!.count == levels.count else {
            throw .invalidArgument("expert record has \(levels.count) levels, layout has \(expertLevels.count)")
        }
        let start = position
        var end = 0
        var entries: [ExpertLevelEntry] = []
        for (k, level) in levels.enumerated() {
            try write(level, at: start + end)
            end += level.count
            entries.append(ExpertLevelEntry(end: UInt64(end), codec: codecs?[k] ?? .raw, crc32c: crc32c(level)))
        }
        experts.append(ExpertRecordEntry(layer: layer, expert: expert, offset: UInt64(start), levels: entries))
        position = SPW.align(start + end, SPW.recordAlignment)
    }

    private func addSection(_ kind: SectionKind, _ bytes: [UInt8], flags: UInt32 = 0) throws(FormatError) {
        position = SPW.align(position, 64)
        try write(bytes, at: position)
        sections.append(
            SectionEntry(
                kind: kind, flags: flags, offset: UInt64(position), length: UInt64(bytes.count),
                checksum: crc32c(bytes)))
        position += bytes.count
    }

    /// Writes the directories, tokenizer (compressed) and meta, then the header; syncs and renames
    /// the file to its destination.
    package func finish(meta: [UInt8], tokenizer: [UInt8]) throws(FormatError) {
        if expertStart == 0 { beginExperts(levels: []) }
        position = SPW.align(position, SPW.recordAlignment)
        sections.append(
            SectionEntry(
                kind: .experts, offset: UInt64(expertStart), length: UInt64(position - expertStart), checksum: 0))
        let directory = TensorDirectory(tensors: tensors, expertLevels: expertLevels)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let dirJSON: [UInt8]
        do { dirJSON = Array(try encoder.encode(directory)) } catch {
            throw .invalidArgument("cannot encode tensor directory: \(error)")
        }
        try addSection(.tensorDirectory, dirJSON)
        try addSection(.expertDirectory, ExpertDirectoryCodec.encode(experts, maxLevels: expertLevels.count))
        try addSection(.tokenizer, try Zstd.compress(tokenizer), flags: sectionFlagZstd)
        try addSection(.meta, meta)
        let fileSize = SPW.align(position, SPW.recordAlignment)
        if ftruncate(fd, off_t(fileSize)) != 0 { throw .io(path: temporaryPath, operation: "truncate", errno: errno) }
        try write(SPWHeaderCodec.encode(sections: sections, fileSize: UInt64(fileSize)), at: 0)
        if fsync(fd) != 0 { throw .io(path: temporaryPath, operation: "fsync", errno: errno) }
        close(fd)
        fd = -1
        if rename(temporaryPath, destination) != 0 {
            let e = errno
            abandon()
            throw .io(path: destination, operation: "rename", errno: e)
        }
        TemporaryFiles.unregister(temporaryPath)
        finished = true
    }
}
