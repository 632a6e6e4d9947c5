/// Little-endian encoding helpers shared by the header and the expert directory.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
}

/// Bounds-checked little-endian reads from a byte range.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    func u32(_ at: Int) -> UInt32? {
        guard at >= 0, at + 4 <= bytes.count else { return nil }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
    func u64(_ at: Int) -> UInt64? {
        guard at >= 0, at + 8 <= bytes.count else { return nil }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }
}

/// The 4 KiB header: magic, version, header size, file size, section table, header checksum.
///
/// Layout: magic[8] · version u32 · headerSize u32 · fileSize u64 · sectionCount u32 · headerCRC u32 ·
/// sections (kind u32, flags u32, offset u64, length u64, crc u32, reserved u32) · zero padding.
/// The header CRC covers all 4096 bytes with its own field zeroed.
enum SPWHeaderCodec {
    static let crcOffset = 28

    static func encode(sections: [SectionEntry], fileSize: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.bytes.append(contentsOf: SPW.magic)
        w.u32(SPW.version)
        w.u32(UInt32(SPW.headerSize))
        w.u64(fileSize)
        w.u32(UInt32(sections.count))
        w.u32(0)
        for s in sections {
            w.u32(s.kind.rawValue)
            w.u32(s.flags)
            w.u64(s.offset)
            w.u64(s.length)
            w.u32(s.checksum)
            w.u32(0)
        }
        w.bytes += [UInt8](repeating: 0, count: SPW.headerSize - w.bytes.count)
        let crc = crc32c(w.bytes)
        withUnsafeBytes(of: crc.littleEndian) { c in
            for i in 0..<4 { w.bytes[crcOffset + i] = c[i] }
        }
        return w.bytes
    }

    /// Parses and validates the header of a mapped file.
    static func decode(_ file: UnsafeRawBufferPointer, path: String) throws(FormatError) -> [SectionEntry] {
        guard file.count >= SPW.headerSize else {
            if file.count >= 8 && !zip(SPW.magic, file.prefix(8)).allSatisfy({ $0 == $1 }) {
                throw .badMagic(path: path)
            }
            throw .truncated(path: path, expected: UInt64(SPW.headerSize), actual: UInt64(file.count))
        }
        guard zip(SPW.magic, file.prefix(8)).allSatisfy({ $0 == $1 }) else { throw .badMagic(path: path) }
        let r = ByteReader(bytes: file)
        let version = r.u32(8)!
        guard version == SPW.version else {
            throw .unsupportedVersion(path: path, version: version, supported: SPW.version)
        }
        guard r.u32(12)! == UInt32(SPW.headerSize) else { throw .corrupt(path: path, what: "header size field") }
        let fileSize = r.u64(16)!
        guard UInt64(file.count) >= fileSize else {
            throw .truncated(path: path, expected: fileSize, actual: UInt64(file.count))
        }
        var header = [UInt8](UnsafeRawBufferPointer(rebasing: file[0..<SPW.headerSize]))
        let stored = r.u32(crcOffset)!
        for i in 0..<4 { header[crcOffset + i] = 0 }
        guard crc32c(header) == stored else { throw .checksumMismatch(path: path, what: "the header") }
        let count = Int(r.u32(24)!)
        guard count <= SPW.maxSections else { throw .corrupt(path: path, what: "section count \(count)") }
        var out: [SectionEntry] = []
        for i in 0..<count {
            let at = 32 + i * SPW.sectionEntrySize
            guard let kind = SectionKind(rawValue: r.u32(at)!) else {
                throw .corrupt(path: path, what: "unknown section kind \(r.u32(at)!)")
            }
            let e = SectionEntry(
                kind: kind, flags: r.u32(at + 4)!, offset: r.u64(at + 8)!, length: r.u64(at + 16)!,
                checksum: r.u32(at + 24)!)
            guard e.offset >= UInt64(SPW.headerSize), e.offset <= fileSize, e.length <= fileSize - e.offset else {
                throw .corrupt(path: path, what: "section \(kind) lies outside the file")
            }
            out.append(e)
        }
        return out
    }
}

/// The binary expert directory: a 16-byte header (entrySize, maxLevels, count, reserved), then
/// `count` entries of (layer u32, expert u32, offset u64, levelCount u32, reserved u32,
/// maxLevels × (end u64, codec u32, crc u32)).
enum ExpertDirectoryCodec {
    static func entrySize(maxLevels: Int) -> Int { 24 + 16 * maxLevels }

    static func encode(_ entries: [ExpertRecordEntry], maxLevels: Int) -> [UInt8] {
        var w = ByteWriter()
        w.u32(UInt32(entrySize(maxLevels: maxLevels)))
        w.u32(UInt32(maxLevels))
        w.u32(UInt32(entries.count))
        w.u32(0)
        for e in entries {
            w.u32(UInt32(e.layer))
            w.u32(UInt32(e.expert))
            w.u64(e.offset)
            w.u32(UInt32(e.levels.count))
            w.u32(0)
            for k in 0..<maxLevels {
                let l = k < e.levels.count ? e.levels[k] : ExpertLevelEntry(end: 0, codec: .raw, crc32c: 0)
                w.u64(l.end)
                w.u32(l.codec.rawValue)
                w.u32(l.crc32c)
            }
        }
        return w.bytes
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws(FormatError) -> [ExpertRecordEntry] {
        let r = ByteReader(bytes: bytes)
        guard let size = r.u32(0), let maxLevels = r.u32(4), let count = r.u32(8) else {
            throw .corrupt(path: path, what: "expert directory header")
        }
        guard maxLevels <= 16, Int(size) == entrySize(maxLevels: Int(maxLevels)),
            16 + Int(count) * Int(size) <= bytes.count
        else { throw .corrupt(path: path, what: "expert directory size") }
        var out: [ExpertRecordEntry] = []
        out.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            let at = 16 + i * Int(size)
            let n = Int(r.u32(at + 16)!)
            guard n <= Int(maxLevels) else { throw .corrupt(path: path, what: "expert entry \(i) level count") }
            var levels: [ExpertLevelEntry] = []
            for k in 0..<n {
                let la = at + 24 + 16 * k
                guard let codec = LevelCodec(rawValue: r.u32(la + 8)!) else {
                    throw .corrupt(path: path, what: "expert entry \(i) level \(k) codec")
                }
                levels.append(ExpertLevelEntry(end: r.u64(la)!, codec: codec, crc32c: r.u32(la + 12)!))
            }
            out.append(
                ExpertRecordEntry(
                    layer: Int(r.u32(at)!), expert: Int(r.u32(at + 4)!), offset: r.u64(at + 8)!, levels: levels))
        }
        return out
    }
}
