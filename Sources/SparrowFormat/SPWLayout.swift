/// Constants and fixed-size structures of the `.spw` format, version 1 (see docs/FORMAT.md).
public enum SPW {
    /// First 8 bytes of every file.
    public static let magic: [UInt8] = [0x53, 0x50, 0x52, 0x57, 0x0D, 0x0A, 0x1A, 0x0A]  // "SPRW\r\n\x1a\n"
    public static let version: UInt32 = 1
    public static let headerSize = 4096
    /// Alignment of expert records (O_DIRECT reads) and of the dense and expert sections.
    public static let recordAlignment = 4096
    /// Alignment of each dense tensor inside the dense section.
    public static let tensorAlignment = 64
    public static let sectionEntrySize = 32
    public static let maxSections = (headerSize - 32) / sectionEntrySize

    /// Rounds `x` up to a multiple of `a` (a power of two).
    @inlinable public static func align(_ x: Int, _ a: Int) -> Int { (x + a - 1) & ~(a - 1) }
}

/// What a section holds.
public enum SectionKind: UInt32, Sendable, CaseIterable {
    case meta = 1
    case tokenizer = 2
    case tensorDirectory = 3
    case dense = 4
    case expertDirectory = 5
    case experts = 6
}

/// One entry of the header's section table.
public struct SectionEntry: Sendable, Equatable {
    public var kind: SectionKind
    public var flags: UInt32
    public var offset: UInt64
    public var length: UInt64
    /// CRC-32C of the section's bytes, or 0 where entries carry their own checksums (dense, experts).
    public var checksum: UInt32

    public init(kind: SectionKind, flags: UInt32 = 0, offset: UInt64, length: UInt64, checksum: UInt32) {
        self.kind = kind
        self.flags = flags
        self.offset = offset
        self.length = length
        self.checksum = checksum
    }
}

/// Section flag: the section's bytes are zstd-compressed.
public let sectionFlagZstd: UInt32 = 1

/// A dense (always resident) tensor in the dense section.
public struct TensorEntry: Codable, Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Absolute offset in the file.
    public var offset: Int
    public var length: Int
    public var crc32c: UInt32

    public init(name: String, dtype: DType, shape: [Int], offset: Int, length: Int, crc32c: UInt32) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.length = length
        self.crc32c = crc32c
    }
}

/// One tensor inside an expert record level (e.g. the gate projection).
public struct ExpertComponent: Codable, Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Offset from the start of the record.
    public var offset: Int
    public var length: Int

    public init(name: String, dtype: DType, shape: [Int], offset: Int, length: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.length = length
    }
}

/// What one precision level of an expert record holds. Level k's bytes start where level k-1's end,
/// so an expert at level k is the byte prefix `[0, end_k)` of its record.
public struct ExpertLevelLayout: Codable, Sendable, Equatable {
    /// Nominal bits per weight at this level (16 for bf16/f16, 32 for f32).
    public var bits: Int
    /// Tensors this level adds, offsets relative to the record start.
    public var components: [ExpertComponent]

    public init(bits: Int, components: [ExpertComponent]) {
        self.bits = bits
        self.components = components
    }
}

/// Codec of an expert level's stored bytes.
public enum LevelCodec: UInt32, Sendable {
    case raw = 0
    case zstd = 1
}

/// One level of one expert record in the expert directory.
public struct ExpertLevelEntry: Sendable, Equatable {
    /// End of this level, in bytes from the record start (exclusive).
    public var end: UInt64
    public var codec: LevelCodec
    /// CRC-32C of the level's bytes `[end_{k-1}, end_k)`.
    public var crc32c: UInt32

    public init(end: UInt64, codec: LevelCodec, crc32c: UInt32) {
        self.end = end
        self.codec = codec
        self.crc32c = crc32c
    }
}

/// The record of one (layer, expert) in the expert section.
public struct ExpertRecordEntry: Sendable, Equatable {
    public var layer: Int
    public var expert: Int
    /// Absolute file offset, a multiple of `SPW.recordAlignment`.
    public var offset: UInt64
    public var levels: [ExpertLevelEntry]

    public init(layer: Int, expert: Int, offset: UInt64, levels: [ExpertLevelEntry]) {
        self.layer = layer
        self.expert = expert
        self.offset = offset
        self.levels = levels
    }

    /// Bytes of the prefix that holds levels 0...level.
    public func prefixLength(level: Int) -> Int { Int(levels[level].end) }
}

/// The tensor directory section (JSON): dense tensors and the layout shared by all expert records.
public struct TensorDirectory: Codable, Sendable {
    public var tensors: [TensorEntry]
    public var expertLevels: [ExpertLevelLayout]

    public init(tensors: [TensorEntry], expertLevels: [ExpertLevelLayout]) {
        self.tensors = tensors
        self.expertLevels = expertLevels
    }
}
