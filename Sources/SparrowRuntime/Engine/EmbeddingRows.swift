import Foundation
import SparrowFormat
import SparrowIO
import SparrowKernels
import SparrowQuant

/// Embedding lookups that read one row from the file per token instead of keeping the table
/// resident: under a memory budget, a vocabulary of 32 k–150 k rows would otherwise hold tens to
/// hundreds of MiB for a few rows per token. Rows come through `pread` (the page cache, not the
/// process's memory). Used by budgeted sessions when the output head is a separate matrix.
///
/// Every row read is checked: when the first budgeted session of a model is created the table is
/// read once (through a small buffer), checked against its tensors' checksums, and a CRC-32C is kept
/// per row and piece on the model (4 bytes a row); a row whose read fails or whose bytes do not
/// match is read again once, then reported.
final class EmbeddingRows {
    private let fd: Int32
    private let reader: PositionalReader
    private let matrix: WeightMatrix
    /// File offset of row 0 of each piece (the float table, or the scales then each plane) and its bytes per row.
    private let pieces: [(offset: Int, rowBytes: Int)]
    /// CRC-32C of each row of each piece: `rowChecksums[piece * rows + row]`.
    private let rowChecksums: [UInt32]
    private let rows: Int
    private let path: String
    private let buffer: UnsafeMutableRawPointer
    /// The file ranges the table occupies (to drop from memory).
    let ranges: [Range<Int>]

    /// nil when the table cannot be read this way (then the mapping serves it); throws when its
    /// bytes do not match their checksums. `faults`: injected into the row reads (tests; the
    /// session's `io.faults`).
    init?(model: Model, faults: FaultInjector? = nil) throws(SparrowError) {
        let file = model.file
        let name = TensorName.embedding.description
        let base = file.file.bytes.baseAddress!
        var tensors = [file.tensor(name), file.tensor(QuantLayout.scalesName(name))].compactMap { $0 }
        var k = 0
        while let p = file.tensor(QuantLayout.planeName(name, k)) {
            tensors.append(p)
            k += 1
        }
        guard !tensors.isEmpty else { return nil }
        let fd = open(file.file.reopenablePath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let matrix = model.weights.embedding
        let pieces = matrix.rowPieces.map { (offset: $0.start - UnsafeRawPointer(base), rowBytes: $0.bytes) }
        let rows = model.config.vocabSize
        do {
            // Once per model: the first budgeted session checks the table and derives the sums.
            rowChecksums = try model.embeddingRowChecksums.withLock { cached throws(SparrowError) -> [UInt32] in
                if let cached { return cached }
                let plain = PositionalReader(fileDescriptor: fd, path: file.path)
                try Self.verify(tensors, reader: plain)
                let sums = try Self.rowChecksums(of: pieces, rows: rows, reader: plain)
                cached = sums
                return sums
            }
        } catch {
            close(fd)
            throw error
        }
        self.matrix = matrix
        self.pieces = pieces
        self.rows = rows
        ranges = tensors.map { $0.offset..<($0.offset + $0.length) }
        path = file.path
        self.fd = fd
        reader = PositionalReader(fileDescriptor: fd, path: file.path, faults: faults)
        buffer = .allocate(byteCount: pieces.reduce(0) { $0 + $1.rowBytes }, alignment: 64)
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// Row `token` as f32 into `out`. No allocation.
    func read(_ token: Int, into out: UnsafeMutablePointer<Float>) throws(SparrowError) {
        var at = 0
        for (p, piece) in pieces.enumerated() {
            let dest = UnsafeMutableRawBufferPointer(start: buffer + at, count: piece.rowBytes)
            // A failed or damaged read is tried once more, then reported (as expert reads are).
            for attempt in 1...2 {
                do throws(IOError) {
                    try reader.read(into: dest, at: piece.offset + token * piece.rowBytes)
                } catch {
                    if attempt == 2 { throw .io(error) }
                    continue
                }
                if crc32c(UnsafeRawBufferPointer(dest)) == rowChecksums[p * rows + token] { break }
                if attempt == 2 {
                    throw .format(.checksumMismatch(path: path, what: "embedding row \(token) (piece \(p))"))
                }
            }
            at += piece.rowBytes
        }
        matrix.decodeRow(packed: buffer, into: out)
    }

    /// The bytes each read of the one-off passes moves: small, so the buffer comes and goes without
    /// leaving the heap larger (glibc keeps a freed 1 MiB block once its mmap threshold has risen).
    private static let chunkBytes = 64 << 10

    /// Checks `tensors` against their checksums, reading them through a small buffer.
    private static func verify(_ tensors: [TensorEntry], reader: PositionalReader) throws(SparrowError) {
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 64)
        defer { chunk.deallocate() }
        for t in tensors {
            var crc: UInt32 = 0
            var done = 0
            while done < t.length {
                let part = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<min(chunkBytes, t.length - done)])
                do { try reader.read(into: part, at: t.offset + done) } catch { throw .io(error) }
                crc = crc32c(UnsafeRawBufferPointer(part), seed: crc)
                done += part.count
            }
            guard crc == t.crc32c else {
                throw .format(.checksumMismatch(path: reader.path, what: "tensor '\(t.name)'"))
            }
        }
    }

    /// The CRC-32C of every row of every piece, reading whole rows through a small buffer.
    private static func rowChecksums(
        of pieces: [(offset: Int, rowBytes: Int)], rows: Int, reader: PositionalReader
    ) throws(SparrowError) -> [UInt32] {
        var sums = [UInt32](repeating: 0, count: pieces.count * rows)
        for (p, piece) in pieces.enumerated() {
            let perRead = max(1, chunkBytes / piece.rowBytes)
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: perRead * piece.rowBytes, alignment: 64)
            defer { chunk.deallocate() }
            var row = 0
            while row < rows {
                let n = min(perRead, rows - row)
                let part = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<(n * piece.rowBytes)])
                do { try reader.read(into: part, at: piece.offset + row * piece.rowBytes) } catch { throw .io(error) }
                for r in 0..<n {
                    let bytes = UnsafeRawBufferPointer(
                        rebasing: part[(r * piece.rowBytes)..<((r + 1) * piece.rowBytes)])
                    sums[p * rows + row + r] = crc32c(bytes)
                }
                row += n
            }
        }
        return sums
    }
}
