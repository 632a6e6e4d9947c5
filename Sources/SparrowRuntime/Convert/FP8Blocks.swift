import SparrowFormat
import SparrowQuant

/// FP8 checkpoints (DeepSeek-V3/R1's `quant_method: fp8`): each quantized matrix is an
/// `F8_E4M3` tensor `NAME` with an f32 `NAME_scale_inv` of one scale per `block` of it. The
/// converter decodes them to f32 exactly (a 3-bit mantissa times an f32 scale) and stores the
/// result as it stores any source.
struct FP8Blocks {
    /// Rows and columns of a scale's block (`weight_block_size`).
    let block: (rows: Int, cols: Int)

    static let dtypeName = "F8_E4M3"

    /// The scale tensor of `hit` (an `F8_E4M3` matrix `[rows, cols]`), checked.
    func scales(of hit: (SafeTensorsFile, SafeTensorInfo), in checkpoint: SafeTensorsCheckpoint) throws(SparrowError)
        -> (SafeTensorsFile, SafeTensorInfo)
    {
        let info = hit.1
        let name = info.name + "_scale_inv"
        guard info.shape.count == 2, info.range.count == info.elementCount else {
            throw .format(.badTensor(path: hit.0.file.path, name: info.name, problem: "an FP8 tensor must be a matrix"))
        }
        guard let s = checkpoint.info(name) else { throw .format(.missingTensor(path: hit.0.file.path, name: name)) }
        let want = [(info.shape[0] + block.rows - 1) / block.rows, (info.shape[1] + block.cols - 1) / block.cols]
        guard s.1.dtype == .f32, s.1.shape == want else {
            throw .format(
                .badTensor(
                    path: s.0.file.path, name: name,
                    problem:
                        "\(s.1.dtypeName) \(s.1.shape), expected F32 \(want) (blocks of \(block.rows)×\(block.cols))"))
        }
        return s
    }

    /// `hit`'s values as f32 into `out` (`elementCount` of them).
    func decode(
        _ hit: (SafeTensorsFile, SafeTensorInfo), in checkpoint: SafeTensorsCheckpoint,
        into out: UnsafeMutablePointer<Float>
    ) throws(SparrowError) {
        let s = try scales(of: hit, in: checkpoint)
        let codes = hit.0.bytes(of: hit.1).baseAddress!.assumingMemoryBound(to: UInt8.self)
        let scale = s.0.bytes(of: s.1).baseAddress!.assumingMemoryBound(to: Float.self)
        let ok = FP8E4M3.dequantize(
            codes, rows: hit.1.shape[0], cols: hit.1.shape[1], scales: scale, blockRows: block.rows,
            blockCols: block.cols, into: out)
        guard ok else {
            throw .format(
                .badTensor(path: hit.0.file.path, name: hit.1.name, problem: "an FP8 value or its scale is not finite"))
        }
    }
}

extension TensorResolver {
    /// `hit`'s values as f32 into `out`, whatever the source type (float, or FP8 blocks).
    func decode(_ hit: (SafeTensorsFile, SafeTensorInfo), into out: UnsafeMutablePointer<Float>) throws(SparrowError) {
        if hit.1.dtypeName == FP8Blocks.dtypeName, let fp8 {
            try fp8.decode(hit, in: checkpoint, into: out)
        } else {
            DTypeConversion.convert(
                hit.0.bytes(of: hit.1).baseAddress!, from: hit.1.dtype!, to: .f32, count: hit.1.elementCount, into: out)
        }
    }
}
