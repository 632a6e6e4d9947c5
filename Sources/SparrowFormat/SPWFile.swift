import Foundation

/// A `.spw` model file opened read-only through one memory mapping.
///
/// `init` validates everything that is cheap to validate: the header and its checksum, every
/// section's bounds, the checksums of meta, tokenizer and both directories, and that every tensor
/// and expert record lies inside its section with a size that matches its shape. Dense tensor
/// bytes are verified with `verifyDense()`, expert levels with `verifyExpert(_:level:)` (done by
/// the runtime when a record is first used), the whole file with `verifyAll()`.
/// Immutable after init; shareable across threads.
public final class SPWFile: @unchecked Sendable {
    package let file: MappedFile
    package let sections: [SectionEntry]
    /// The meta JSON (architecture, hyper-parameters, provenance), opaque to the format.
    package let meta: [UInt8]
    /// The tokenizer definition (tokenizer.json bytes), decompressed.
    package let tokenizer: [UInt8]
    package let directory: TensorDirectory
    package let experts: [ExpertRecordEntry]
    /// Decoded bytes each expert level adds (the layout's sizes; a zstd level stores fewer).
    package let levelSizes: [Int]
    private let tensorIndex: [String: Int]
    private let expertIndex: [Int: Int]  // layer << 32 | expert → index in `experts`

    package var path: String { file.path }

    public init(path: String) throws(FormatError) {
        let mapped = try MappedFile(path: path)
        file = mapped
        let bytes = mapped.bytes
        let table = try SPWHeaderCodec.decode(bytes, path: path)
        sections = table
        func section(_ kind: SectionKind) throws(FormatError) -> (SectionEntry, UnsafeRawBufferPointer) {
            guard let s = table.first(where: { $0.kind == kind }) else {
                throw .corrupt(path: path, what: "missing section \(kind)")
            }
            let b = UnsafeRawBufferPointer(rebasing: bytes[Int(s.offset)..<Int(s.offset + s.length)])
            if kind != .dense && kind != .experts && crc32c(b) != s.checksum {
                throw .checksumMismatch(path: path, what: "section \(kind)")
            }
            return (s, b)
        }
        meta = Array(try section(.meta).1)
        let (tokSection, tokBytes) = try section(.tokenizer)
        tokenizer =
            tokSection.flags & sectionFlagZstd != 0
            ? try Zstd.decompress(tokBytes, limit: 1 << 30, what: path) : Array(tokBytes)
        let dir: TensorDirectory
        do {
            dir = try JSONDecoder().decode(TensorDirectory.self, from: Data(try section(.tensorDirectory).1))
        } catch let e as FormatError { throw e } catch {
            throw .corrupt(path: path, what: "tensor directory: \(error)")
        }
        directory = dir
        let records = try ExpertDirectoryCodec.decode(try section(.expertDirectory).1, path: path)
        experts = records
        let (dense, _) = try section(.dense)
        let (expertSection, _) = try section(.experts)

        tensorIndex = try Self.indexTensors(dir, dense: dense, path: path)
        levelSizes = try Self.levelSizes(dir, path: path)
        expertIndex = try Self.indexExperts(records, levelSizes: levelSizes, section: expertSection, path: path)
    }

    /// Each tensor's index by name, after checking that its length matches its shape and that it
    /// lies inside the dense section.
    private static func indexTensors(_ dir: TensorDirectory, dense: SectionEntry, path: String) throws(FormatError)
        -> [String: Int]
    {
        var index: [String: Int] = [:]
        for (i, t) in dir.tensors.enumerated() {
            let need = t.dtype.bytes(count: t.shape.reduce(1, *))
            guard t.shape.allSatisfy({ $0 >= 0 }), t.length == need else {
                throw .corrupt(
                    path: path, what: "tensor '\(t.name)' length \(t.length) does not match shape \(t.shape)")
            }
            guard t.offset >= Int(dense.offset), t.offset + t.length <= Int(dense.offset + dense.length) else {
                throw .corrupt(path: path, what: "tensor '\(t.name)' lies outside the dense section")
            }
            index[t.name] = i
        }
        return index
    }

    /// Decoded bytes each expert level adds, after checking that the components follow each other
    /// and match their shapes.
    private static func levelSizes(_ dir: TensorDirectory, path: String) throws(FormatError) -> [Int] {
        var ends: [Int] = []
        var end = 0
        for level in dir.expertLevels {
            for c in level.components {
                guard c.offset >= end, c.length == c.dtype.bytes(count: c.shape.reduce(1, *)) else {
                    throw .corrupt(path: path, what: "expert component '\(c.name)' layout")
                }
                end = c.offset + c.length
            }
            ends.append(end)
        }
        return ends.indices.map { ends[$0] - ($0 == 0 ? 0 : ends[$0 - 1]) }
    }

    /// Each record's index by (layer, expert), after checking that it is aligned, inside the expert
    /// section, has every level, and that its raw levels have the layout's sizes.
    private static func indexExperts(
        _ records: [ExpertRecordEntry], levelSizes: [Int], section: SectionEntry, path: String
    ) throws(FormatError) -> [Int: Int] {
        var index: [Int: Int] = [:]
        for (i, e) in records.enumerated() {
            guard e.levels.count == levelSizes.count, e.offset % UInt64(SPW.recordAlignment) == 0,
                e.offset >= section.offset,
                e.offset + (e.levels.last?.end ?? 0) <= section.offset + section.length
            else { throw .corrupt(path: path, what: "expert record (layer \(e.layer), expert \(e.expert)) bounds") }
            for (k, l) in e.levels.enumerated() {
                let stored = Int(l.end) - (k == 0 ? 0 : Int(e.levels[k - 1].end))
                if stored < 0 || (l.codec == .raw && stored != levelSizes[k]) {
                    throw .corrupt(
                        path: path, what: "expert record (layer \(e.layer), expert \(e.expert)) level \(k) size")
                }
            }
            index[e.layer << 32 | e.expert] = i
        }
        return index
    }

    /// Directory entry of a dense tensor.
    package func tensor(_ name: String) -> TensorEntry? {
        tensorIndex[name].map { directory.tensors[$0] }
    }

    /// The bytes of a dense tensor, valid while this object lives.
    package func bytes(of t: TensorEntry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[t.offset..<(t.offset + t.length)])
    }

    /// Directory entry of an expert record.
    package func expert(layer: Int, expert: Int) -> ExpertRecordEntry? {
        expertIndex[layer << 32 | expert].map { experts[$0] }
    }

    /// Whether levels 0...level of a record are stored raw (usable in place, no decoding).
    package func isRaw(_ e: ExpertRecordEntry, upTo level: Int) -> Bool {
        e.levels[0...level].allSatisfy { $0.codec == .raw }
    }

    /// Decoded bytes of levels 0...level (what `decodeExpert` writes).
    package func decodedLength(level: Int) -> Int { levelSizes[0...level].reduce(0, +) }

    /// Checks the stored bytes of levels `from...level` of a record (`stored` holds the record's
    /// stored prefix through `level`) and decodes them into `output`, which holds the decoded
    /// prefix (at least `decodedLength(level:)` bytes); levels below `from` are already there.
    /// A checksum mismatch or undecodable level is an error naming the layer, expert and level.
    package func decodeExpert(
        _ e: ExpertRecordEntry, levels range: ClosedRange<Int>, stored: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws(FormatError) {
        var outStart = decodedLength(level: range.lowerBound) - levelSizes[range.lowerBound]
        for k in range {
            let start = k == 0 ? 0 : Int(e.levels[k - 1].end)
            let slice = UnsafeRawBufferPointer(rebasing: stored[start..<Int(e.levels[k].end)])
            let what = "expert record layer \(e.layer) expert \(e.expert) level \(k)"
            if crc32c(slice) != e.levels[k].crc32c { throw .checksumMismatch(path: path, what: what) }
            let out = UnsafeMutableRawBufferPointer(rebasing: output[outStart..<(outStart + levelSizes[k])])
            switch e.levels[k].codec {
            case .raw: out.copyMemory(from: slice)
            case .zstd: try Zstd.decompress(slice, into: out, what: path + ": " + what)
            }
            outStart += levelSizes[k]
        }
    }

    /// The mapped bytes of an expert record's prefix up to and including `level`.
    package func mappedExpert(_ e: ExpertRecordEntry, level: Int) -> UnsafeRawBufferPointer {
        let start = Int(e.offset)
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + e.prefixLength(level: level))])
    }

    /// Checks one level of an expert record against its checksum.
    package func verifyExpert(_ e: ExpertRecordEntry, level: Int) throws(FormatError) {
        let start = Int(e.offset) + (level == 0 ? 0 : Int(e.levels[level - 1].end))
        let end = Int(e.offset) + Int(e.levels[level].end)
        if crc32c(UnsafeRawBufferPointer(rebasing: file.bytes[start..<end])) != e.levels[level].crc32c {
            throw .checksumMismatch(
                path: path, what: "expert record layer \(e.layer) expert \(e.expert) level \(level)")
        }
    }

    /// Checks every dense tensor against its checksum. Each tensor's pages are released from this
    /// process once checked (they stay in the page cache), so opening a model never holds more
    /// than one tensor resident: a memory budget decides later what stays.
    package func verifyDense() throws(FormatError) {
        for t in directory.tensors {
            if crc32c(bytes(of: t)) != t.crc32c { throw .checksumMismatch(path: path, what: "tensor '\(t.name)'") }
            // Whole pages only: a page shared with the next tensor stays.
            let page = 4096
            let start = (t.offset + page - 1) / page * page
            let end = (t.offset + t.length) / page * page
            if end > start { file.advise(offset: start, length: end - start, MADV_DONTNEED) }
        }
    }

    /// Checks every checksum in the file; `progress` gets (done, total) bytes.
    public func verifyAll(progress: ((Int, Int) -> Void)? = nil) throws(FormatError) {
        let total = file.count
        var done = 0
        for t in directory.tensors {
            if crc32c(bytes(of: t)) != t.crc32c { throw .checksumMismatch(path: path, what: "tensor '\(t.name)'") }
            done += t.length
            progress?(done, total)
        }
        for e in experts {
            for k in 0..<e.levels.count { try verifyExpert(e, level: k) }
            done += Int(e.levels.last?.end ?? 0)
            progress?(done, total)
        }
    }
}
