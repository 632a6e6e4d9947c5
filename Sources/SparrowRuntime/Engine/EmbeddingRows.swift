import Foundation
import SparrowFormat
import SparrowIO
import SparrowKernels
import SparrowQuant

/// Embedding lookups that read one row from the file per token instead of keeping the table
/// resident: under a memory budget, a vocabulary of 32 k–150 k rows would otherwise hold tens to
/// hundreds of MiB for a few rows per token. Rows come through `pread` (the page cache, not the
/// process's memory). Used by budgeted sessions when the output head is a separate matrix.
final class EmbeddingRows {
    private let fd: Int32
    private let reader: PositionalReader
    private let matrix: WeightMatrix
    /// File offset of row 0 of each piece (the float table, or the scales then each plane) and its bytes per row.
    private let pieces: [(offset: Int, rowBytes: Int)]
    private let buffer: UnsafeMutableRawPointer
    /// The file ranges the table occupies (to drop from memory).
    let ranges: [Range<Int>]

    init?(model: Model) {
        let file = model.file
        let name = TensorName.embedding.description
        let base = file.file.bytes.baseAddress!
        matrix = model.weights.embedding
        pieces = matrix.rowPieces.map { (offset: $0.start - UnsafeRawPointer(base), rowBytes: $0.bytes) }
        var tensors = [file.tensor(name), file.tensor(QuantLayout.scalesName(name))].compactMap { $0 }
        var k = 0
        while let p = file.tensor(QuantLayout.planeName(name, k)) {
            tensors.append(p)
            k += 1
        }
        ranges = tensors.map { $0.offset..<($0.offset + $0.length) }
        fd = open(file.file.reopenablePath, O_RDONLY | O_CLOEXEC)
        reader = PositionalReader(fileDescriptor: fd, path: file.path)
        guard fd >= 0, !ranges.isEmpty else { return nil }
        buffer = .allocate(byteCount: pieces.reduce(0) { $0 + $1.rowBytes }, alignment: 64)
    }

    deinit {
        close(fd)
        buffer.deallocate()
    }

    /// Row `token` as f32 into `out`. No allocation.
    func read(_ token: Int, into out: UnsafeMutablePointer<Float>) throws(SparrowError) {
        var at = 0
        for piece in pieces {
            let dest = UnsafeMutableRawBufferPointer(start: buffer + at, count: piece.rowBytes)
            do { try reader.read(into: dest, at: piece.offset + token * piece.rowBytes) } catch { throw .io(error) }
            at += piece.rowBytes
        }
        matrix.decodeRow(packed: buffer, into: out)
    }
}
