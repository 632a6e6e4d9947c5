import CSparrowKernels
import SparrowFormat
import SparrowKernels
import SparrowQuant
import Testing

/// The dispatched SIMD kernels against the scalar reference, on ragged shapes.
@Suite(.serialized) struct KernelTests {
    struct Case: CustomStringConvertible {
        var n, k, rows: Int
        var description: String { "n\(n) k\(k) rows\(rows)" }
    }

    static let shapes = [
        Case(n: 1, k: 1, rows: 1), Case(n: 1, k: 17, rows: 5), Case(n: 3, k: 64, rows: 8),
        Case(n: 5, k: 131, rows: 13), Case(n: 1, k: 1024, rows: 37), Case(n: 7, k: 300, rows: 4)
    ]

    @Test(arguments: shapes, [DType.f32, .f16, .bf16])
    func gemmMatchesReference(shape: Case, type: DType) {
        var g = SystemRandomNumberGenerator()
        let x = (0..<(shape.n * shape.k)).map { _ in Float.random(in: -1...1, using: &g) }
        let w32 = (0..<(shape.rows * shape.k)).map { _ in Float.random(in: -1...1, using: &g) }
        var w = [UInt8](repeating: 0, count: w32.count * type.size)
        w32.withUnsafeBytes { src in
            w.withUnsafeMutableBytes {
                DTypeConversion.convert(src.baseAddress!, from: .f32, to: type, count: w32.count, into: $0.baseAddress!)
            }
        }
        var want = [Float](repeating: 0, count: shape.n * shape.rows)
        spk_gemm_ref(x, shape.n, shape.k, shape.k, w, type.kernelType, shape.k, 0, shape.rows, &want, shape.rows)
        for isa in Ops.availableISAs {
            let used = spk_force_isa(isa)
            #expect(used == isa)
            var got = [Float](repeating: .nan, count: shape.n * shape.rows)
            spk_gemm(x, shape.n, shape.k, shape.k, w, type.kernelType, shape.k, 0, shape.rows, &got, shape.rows)
            let tol = Float(shape.k).squareRoot() * 1e-6 * 4
            for i in 0..<got.count {
                #expect(abs(got[i] - want[i]) <= tol * max(1, abs(want[i])), "isa \(used) index \(i)")
            }
        }
        spk_force_isa(-1)
    }

    @Test func crc32cKnownValue() {
        // RFC 3720 test vector: CRC-32C of "123456789" is 0xE3069283.
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    @Test func bf16RoundsToNearestEven() {
        let src: [Float] = [1.0, 1.00390625, 1.01171875, -2.5, .infinity]
        var dst = [UInt16](repeating: 0, count: src.count)
        spk_from_f32(src, &dst, SPK_BF16, src.count)
        #expect(dst == [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F80])
    }
}
