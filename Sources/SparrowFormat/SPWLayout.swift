/// Constants and fixed-size structures of the `.spw` format, version 1 (see docs/FORMAT.md).
package enum SPW {
    /// First 8 bytes of every file.
    package static let magic: [UInt8] = [0x53, 0x50, 0x52, 0x57, 0x0D, 0x0A, 0x1A, 0x0A]  // "SPRW\r\n\x1a\n"
    package static let version: UInt32 = 1
    package static let headerSize = 4096
    /// Alignment of expert records (O_DIRECT reads) and of the dense and expert sections.
    package static let recordAlignment = 4096
    /// Alignment of each dense tensor inside the dense section.
    package static let tensorAlignment = 64
    package static let sectionEntrySize = 32
    package static let maxSections = (headerSize - 32) / sectionEntrySize

    /// Rounds `x` up to a multiple of `a` (a power of two).
    @inlinable package static func align(_ x: Int, _ a: Int) -> Int { (x + a - 1) & ~(a - 1) }
}

/// What a section holds.
package enum SectionKind: UInt32, Sendable, CaseIterable {
    case meta = 1
    case tokenizer = 2
    case tensorDirectory = 3
    case dense = 4
    case expertDirectory = 5
    case experts = 6
}

/// One entry of the header's section table.
package struct SectionEntry: Sendable, Equatable {
    package var kind: SectionKind
    package var flags: UInt32
    package var offset: UInt64
    package var length: UInt64
    /// CRC-32C of the section's bytes, or 0 where entries carry their own checksums (dense, experts).
    package var checksum: UInt32

    package init(kind: SectionKind, flags: UInt32 = 0, offset: UInt64, length: UInt64, checksum: UInt32) {
        self.kind = kind
        self.flags = flags
        self.offset = offset
        self.length = length
        self.checksum = checksum
    }
}

/// Section flag: the section's bytes are zstd-compressed.
package let sectionFlagZstd: UInt32 = 1

/// A dense (always resident) tensor in the dense section.
package struct TensorEntry: Codable, Sendable, Equatable {
    package var name: String
    package var dtype: DType
    package var shape: [Int]
    /// Absolute offset in the file.
    package var offset: Int
    package var length: Int
    package var crc32c: UInt32

    package init(name: String, dtype: DType, shape: [Int], offset: Int, length: Int, crc32c: UInt32) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.length = length
        self.crc32c = crc32c
    }
}

/// One tensor inside an expert record level (e.g. the gate projection).
package struct ExpertComponent: Codable, Sendable, Equatable {
    package var name: String
    package var dtype: DType
    package var shape: [Int]
    /// Offset from the start of the record.
    package var offset: Int
    package var length: Int

    package init(name: String, dtype: DType, shape: [Int], offset: Int, length: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.length = length
    }
}

/// What one precision level of an expert record holds. Level k's bytes start where level k-1's end,
/// so an expert at level k is the byte prefix `[0, end_k)` of its record.
package struct ExpertLevelLayout: Codable, Sendable, Equatable {
    /// Nominal bits per weight at this level (16 for bf16/f16, 32 for f32).
    package var bits: Int
    /// Tensors this level adds, offsets relative to the record start.
    package var components: [ExpertComponent]

    package init(bits: Int, components: [ExpertComponent]) {
        self.bits = bits
        self.components = components
    }
}

/// Codec of an expert level's stored bytes.
package enum LevelCodec: UInt32, Sendable {
    case raw = 0
    case zstd = 1
}

/// One level of one expert record in the expert directory.
package struct ExpertLevelEntry: Sendable, Equatable {
    /// End of this level, in bytes from the record start (exclusive).
    package var end: UInt64
    package var codec: LevelCodec
    /// CRC-32C of the level's bytes `[end_{k-1}, end_k)`.
    package var crc32c: UInt32

    package init(end: UInt64, codec: LevelCodec, crc32c: UInt32) {
        self.end = end
        self.codec = codec
        self.crc32c = crc32c
    }
}

/// The record of one (layer, expert) in the expert section.
package struct ExpertRecordEntry: Sendable, Equatable {
    package var layer: Int
    package var expert: Int
    /// Absolute file offset, a multiple of `SPW.recordAlignment`.
    package var offset: UInt64
    package var levels: [ExpertLevelEntry]

    package init(layer: Int, expert: Int, offset: UInt64, levels: [ExpertLevelEntry]) {
        self.layer = layer
        self.expert = expert
        self.offset = offset
        self.levels = levels
    }

    /// Bytes of the prefix that holds levels 0...level.
    package func prefixLength(level: Int) -> Int { Int(levels[level].end) }
}

/// The tensor directory section (JSON): dense tensors and the layout shared by all expert records.
package struct TensorDirectory: Codable, Sendable {
    package var tensors: [TensorEntry]
    package var expertLevels: [ExpertLevelLayout]

    package init(tensors: [TensorEntry], expertLevels: [ExpertLevelLayout]) {
        self.tensors = tensors
        self.expertLevels = expertLevels
    }
}
