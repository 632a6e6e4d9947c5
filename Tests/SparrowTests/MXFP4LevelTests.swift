import CSparrowKernels
import Foundation
import SparrowFormat
import SparrowKernels
import SparrowQuant
import SparrowRuntime
import Testing

/// The MXFP4 level (E2M1 codes kept as they are, docs/QUANT.md): exact for MXFP4 weights, its
/// 2-bit prefix as defined, other weights rounded as MXFP4 rounds them; a gpt-oss model converted
/// so runs on its exact experts.
@Suite struct MXFP4LevelTests {
    static let e2m1: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]

    /// Rows of MXFP4 blocks: random codes; per group of 64 the second block's exponent `spread`
    /// below or above the first's (any of 0 … spread). Returns the weights and each block's exponent.
    static func mxfp4Rows(rows: Int, cols: Int, spread: Int, seed: UInt64) -> (w: [Float], exponents: [Int]) {
        var state = seed
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        var w = [Float](repeating: 0, count: rows * cols)
        var exponents: [Int] = []
        for b in 0..<(rows * cols / 32) {
            let e = b % 2 == 0 ? -12 + next() % 8 : exponents[b - 1] + (next() % (2 * spread + 1)) - spread
            exponents.append(e)
            for i in 0..<32 {
                let c = next() % 16
                w[b * 32 + i] = (c & 8 != 0 ? -1 : 1) * e2m1[c & 7] * Float(sign: .plus, exponent: e, significand: 1)
            }
            w[b * 32 + next() % 32] = 6 * Float(sign: .plus, exponent: e, significand: 1)  // its scale's largest
        }
        return (w, exponents)
    }

    /// `q` decoded at `level` by the library's row decoder (spk_qrow).
    static func dequantize(_ q: QuantizedMatrix, level: Int) -> [Float] {
        var out = [Float](repeating: 0, count: q.rows * q.cols)
        q.scales.withUnsafeBytes { scales in
            q.shifts.withUnsafeBytes { shifts in
                let planes = q.planes.map { p in p.withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) } }
                let m = WeightMatrix(
                    scales: scales.baseAddress!, planes: Array(planes[0...level]),
                    widths: Array(q.scheme.planeWidths[0...level]), rows: q.rows, cols: q.cols,
                    group: q.scheme.groupSize, shifts: shifts.baseAddress!)
                out.withUnsafeMutableBufferPointer { o in
                    for r in 0..<q.rows { m.row(r, into: o.baseAddress! + r * q.cols) }
                }
            }
        }
        return withExtendedLifetime(q) { out }
    }

    @Test(arguments: [32, 64])
    func mxfp4BlocksComeBackExactly(group: Int) {
        let (rows, cols) = (5, 512)
        let (w, exponents) = Self.mxfp4Rows(rows: rows, cols: cols, spread: 3, seed: UInt64(group))
        let q = w.withUnsafeBufferPointer {
            MatryoshkaQuantizer.quantize($0.baseAddress!, rows: rows, cols: cols, scheme: .mxfp4(groupSize: group))
        }
        #expect(q.shifts.count == rows * cols / group)
        #expect(Self.dequantize(q, level: 1) == w)
        // The 2-bit prefix: the sign and ±0.75 (values up to 1.5; ±1 where the block's shift is 0)
        // or ±3 (2 … 6) times the block's scale.
        let two = Self.dequantize(q, level: 0)
        var wrong = 0
        for (i, v) in w.enumerated() {
            let b = i / 32
            let e = exponents[b]
            let partner = group == 64 ? exponents[b ^ 1] : e
            let k = e - (max(e, partner) - 3)
            let scale = Float(sign: .plus, exponent: e, significand: 1)
            let magnitude = abs(v) / scale
            let want: Float = (magnitude >= 2 ? 3 : (k == 0 ? 1 : 0.75)) * scale
            if two[i] != (v < 0 ? -want : want) { wrong += 1 }  // a zero is coded +0
        }
        #expect(wrong == 0)
    }

    /// In a group of 64 whose blocks' scales are more than 3 exponents apart, the smaller block is
    /// rounded on the grid its partner allows (an error of at most a quarter of 2^e₀), the larger
    /// one stays exact; weights that are no MXFP4 blocks are rounded to the nearest E2M1 point.
    @Test func farApartBlocksAndOtherWeightsAreRounded() {
        let (rows, cols) = (3, 256)
        let (w, exponents) = Self.mxfp4Rows(rows: rows, cols: cols, spread: 6, seed: 9)
        let q = w.withUnsafeBufferPointer {
            MatryoshkaQuantizer.quantize($0.baseAddress!, rows: rows, cols: cols, scheme: .mxfp4())
        }
        let d = Self.dequantize(q, level: 1)
        var bad = 0
        for (i, v) in w.enumerated() {
            let b = i / 32
            let e0 = max(exponents[b], exponents[b ^ 1]) - 3
            if exponents[b] >= e0 {
                bad += d[i] == v ? 0 : 1
            } else {
                bad += abs(d[i] - v) <= Float(sign: .plus, exponent: e0 - 2, significand: 1) ? 0 : 1
            }
        }
        #expect(bad == 0)
        // Bell-shaped weights: each one within half an E2M1 spacing of its block's scale.
        let g = QuantTests.randomMatrix(rows: rows, cols: cols, seed: 3)
        let r = g.withUnsafeBufferPointer {
            MatryoshkaQuantizer.quantize($0.baseAddress!, rows: rows, cols: cols, scheme: .mxfp4())
        }
        let dg = Self.dequantize(r, level: 1)
        for b in 0..<(rows * cols / 32) {
            let block = g[(b * 32)..<(b * 32 + 32)]
            let largest = block.map(abs).max()!
            let scale = Float(sign: .plus, exponent: largest.exponent - 2, significand: 1)
            for i in block.indices { #expect(abs(dg[i] - g[i]) <= scale * 1.0001, "weight \(i)") }
        }
    }

    /// The layout is refused where it cannot be: other level lists and group sizes.
    @Test func badMXFP4SchemesAreRefused() {
        #expect(throws: QuantError.self) {
            try MatryoshkaScheme(levels: [2, 4, 8], groupSize: 64, codebook: .e2m1).validate()
        }
        #expect(throws: QuantError.self) { try MatryoshkaScheme.mxfp4(groupSize: 128).validate() }
        #expect(throws: QuantError.self) { try MatryoshkaScheme.mxfp4(groupSize: 16).validate() }
        #expect(throws: Never.self) { try MatryoshkaScheme.mxfp4(groupSize: 32).validate() }
    }

    /// A checkpoint that ships its experts in MXFP4 keeps them so unless asked otherwise.
    @Test func mxfp4CheckpointsKeepTheirCodesByDefault() throws {
        let source = Paths.fixtures + "/variants/gpt_oss_mxfp4"
        let uniform = MatryoshkaScheme(levels: [2, 4, 8], groupSize: 32)
        let kept = try Converted.model(source, options: .init(expertScheme: uniform), tag: "kept")
        #expect(kept.expertBits == [2, 4])
        let asked = try Converted.model(source, options: .init(expertScheme: uniform, keepMXFP4: false), tag: "asked")
        #expect(asked.expertBits == [2, 4, 8])
        let bf16 = try Converted.model(
            Paths.fixtures + "/gpt_oss", options: .init(expertScheme: uniform), tag: "q248-32")
        #expect(bf16.expertBits == [2, 4, 8])  // float sources keep the levels asked for
    }

    /// gpt-oss's experts are MXFP4 blocks: converted to the MXFP4 level they are the float
    /// model's weights exactly (the float kernel path, which dequantizes the weights, gives the
    /// float model's logits to rounding), the integer paths are as close to transformers as the
    /// 8-bit level, and a budgeted run gives the resident logits exactly.
    @Test func gptOssRunsOnExactExperts() throws {
        let ref = try ConformanceTests.reference("gpt_oss")
        let fixture = Paths.fixtures + "/gpt_oss"
        let mxfp4 = try Converted.path(
            of: fixture, options: .init(expertScheme: .mxfp4(groupSize: 32), force: true), tag: "mxfp4")
        let eight = try Converted.path(
            of: fixture, options: .init(expertScheme: MatryoshkaScheme(levels: [8], groupSize: 32), force: true),
            tag: "q8-32")
        let float = try Converted.path(of: fixture)
        let dir = Paths.temporaryDirectory()
        func logits(_ model: String, isa: String?) throws -> [Float] {
            let out = dir + "/\(URL(fileURLWithPath: model).lastPathComponent)-\(isa ?? "best").npy"
            let tokens = ref.ids.map(String.init).joined(separator: ",")
            let r = try runCLI(
                ["logits", "-m", model, "--tokens", tokens, "--out", out],
                environment: isa.map { ["SPARROW_ISA": $0] } ?? [:])
            #expect(r.status == 0, "\(r.stderr)")
            return try NPY.readFloat32(out).values
        }
        let exact = try logits(float, isa: "scalar")
        #expect(maxAbsDiff(try logits(mxfp4, isa: "scalar"), exact) <= 1e-5 * ref.maxAbs)
        let e2m1 = maxAbsDiff(try logits(mxfp4, isa: nil), ref.logits.values)
        let q8 = maxAbsDiff(try logits(eight, isa: nil), ref.logits.values)
        #expect(e2m1 <= 1.5 * q8 + 1e-4 * ref.maxAbs, "MXFP4 level \(e2m1), 8-bit level \(q8)")

        let model = try Model(path: mxfp4)
        #expect(model.expertBits == [2, 4])
        let resident = try Session(model: model).evaluate(ref.ids, logits: .all)
        let budgeted = try Session(
            model: model, options: .init(expertBits: 4, expertCacheBytes: 160 << 10, tokenPrecision: nil))
        #expect(try budgeted.evaluate(ref.ids, logits: .all) == resident)
    }
}
