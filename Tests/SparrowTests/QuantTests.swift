import CSparrowKernels
import Foundation
import SparrowFormat
import SparrowKernels
import SparrowQuant
import SparrowRuntime
import Testing

/// Matryoshka quantization: error bounds, the nested property, kernels against the reference.
@Suite struct QuantTests {
    static func randomMatrix(rows: Int, cols: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<(rows * cols)).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Float(state >> 40) / Float(1 << 24)
            return (u - 0.5) * 0.2 + (u > 0.99 ? 0.5 : 0)  // a few outliers
        }
    }

    /// A kernel view of `q` at level `level`.
    static func view(_ q: QuantizedMatrix, level: Int, keep: inout [[UInt8]], scales: inout [UInt16]) -> spk_qmatrix {
        keep = q.planes
        scales = q.scales
        let planes = (0...level).map { k in keep[k].withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) } }
        let w = scales.withUnsafeBytes { s in
            WeightMatrix(
                scales: s.baseAddress!, planes: planes, widths: Array(q.scheme.planeWidths[0...level]), rows: q.rows,
                cols: q.cols, group: q.scheme.groupSize)
        }
        return w.quantizedView!
    }

    static func dequantize(_ q: QuantizedMatrix, level: Int) -> [Float] {
        var keep: [[UInt8]] = []
        var scales: [UInt16] = []
        var m = view(q, level: level, keep: &keep, scales: &scales)
        var out = [Float](repeating: 0, count: q.rows * q.cols)
        for r in 0..<q.rows { out.withUnsafeMutableBufferPointer { spk_qrow(&m, r, $0.baseAddress! + r * q.cols) } }
        return withExtendedLifetime((keep, scales)) { out }
    }

    /// The stored grid (min, step) of group `g` of row `r`.
    static func grid(_ q: QuantizedMatrix, row r: Int, group g: Int) -> (m: Float, d: Float) {
        let i = (r * (q.cols / q.scheme.groupSize) + g) * 2
        return (Float(Float16(bitPattern: q.scales[i])), Float(Float16(bitPattern: q.scales[i + 1])))
    }

    @Test(arguments: [16, 32, 64, 128])
    func roundTripErrorIsWithinHalfABucket(group: Int) throws {
        let rows = 7
        let cols = 256
        let w = Self.randomMatrix(rows: rows, cols: cols, seed: UInt64(group))
        let scheme = MatryoshkaScheme(levels: [2, 4, 8], groupSize: group)
        let q = w.withUnsafeBufferPointer {
            MatryoshkaQuantizer.quantize($0.baseAddress!, rows: rows, cols: cols, scheme: scheme)
        }
        var previous = Float.infinity
        for (level, bits) in scheme.levels.enumerated() {
            let d = Self.dequantize(q, level: level)
            var worst: Float = 0
            var mse: Float = 0
            for r in 0..<rows {
                for g in 0..<(cols / group) {
                    let (m, step) = Self.grid(q, row: r, group: g)
                    let halfBucket = step * Float(1 << (8 - bits)) / 2
                    for i in 0..<group {
                        let idx = r * cols + g * group + i
                        // Outside the (possibly clipped) grid a weight may also be off by its distance to it.
                        let outside = max(0, m - step / 2 - w[idx], w[idx] - (m + step * 255.5))
                        let bound = (halfBucket + outside) * 1.001 + 1e-6
                        worst = max(worst, abs(d[idx] - w[idx]) / bound)
                        mse += (d[idx] - w[idx]) * (d[idx] - w[idx])
                    }
                }
            }
            #expect(worst <= 1, "level \(bits) bits: error \(worst)× the bound")
            #expect(mse < previous, "more bits must not be worse")
            previous = mse
        }
    }

    /// Each group's grid clips no weight, and its error (4-bit plus a quarter of 2-bit, squared)
    /// is never above that of the grid whose 4-bit points fall on min and max: bell-shaped weights
    /// with outliers keep that grid; MXFP4 weights (E2M1 points times a power of two per block of
    /// 32) get a clearly better one.
    @Test func groupGridClipsNothingAndBeatsTheMinMaxGrid() {
        let rows = 16
        let cols = 128
        let group = 32
        // Bell-shaped weights rounded to MXFP4 as the hub ships gpt-oss: per block of 32, a
        // power-of-two scale from the largest magnitude, each weight to the nearest E2M1 point.
        let e2m1: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
        let bell = Self.randomMatrix(rows: rows, cols: cols * 4, seed: 9)
        var lattice = (0..<(rows * cols)).map { i in bell[4 * i..<4 * i + 4].reduce(0, +) }  // ~normal
        for b in stride(from: 0, to: lattice.count, by: 32) {
            let amax = lattice[b..<b + 32].map(abs).max()!
            let scale = Float(sign: .plus, exponent: amax.exponent - 2, significand: 1)
            for i in b..<b + 32 {
                let x = abs(lattice[i]) / scale
                let point = e2m1.min { abs($0 - x) < abs($1 - x) }!
                lattice[i] = (lattice[i] < 0 ? -point : point) * scale
            }
        }
        for (name, w) in [("outliers", Self.randomMatrix(rows: rows, cols: cols, seed: 5)), ("mxfp4", lattice)] {
            let q = w.withUnsafeBufferPointer {
                MatryoshkaQuantizer.quantize(
                    $0.baseAddress!, rows: rows, cols: cols, scheme: .init(levels: [2, 4, 8], groupSize: group))
            }
            let (two, four) = (Self.dequantize(q, level: 0), Self.dequantize(q, level: 1))
            var chosen: Float = 0
            var minMax: Float = 0
            var (chosen4, minMax4): (Float, Float) = (0, 0)
            var (kept, searched) = (0, 0)
            for r in 0..<rows {
                for g in 0..<(cols / group) {
                    let (chosenBefore, minMaxBefore) = (chosen, minMax)
                    defer {
                        // A group keeps the min/max grid (up to this test's own f16 rounding of it), or
                        // takes one with at least 10 % less error.
                        let (c, mm) = (chosen - chosenBefore, minMax - minMaxBefore)
                        if abs(c - mm) <= 1e-3 * mm { kept += 1 } else if c <= 0.9 * mm * 1.001 { searched += 1 }
                    }
                    let slice = (r * cols + g * group)..<(r * cols + (g + 1) * group)
                    let (lo, hi) = (w[slice].min()!, w[slice].max()!)
                    let (m, d) = Self.grid(q, row: r, group: g)
                    #expect(m <= lo && m + 255 * d >= hi, "\(name): row \(r) group \(g) clips")
                    let d0 = Float(Float16((hi - lo) / 240))
                    let m0 = Float(Float16(lo - 7.5 * (hi - lo) / 240))
                    for i in slice {
                        chosen += (four[i] - w[i]) * (four[i] - w[i]) + 0.25 * (two[i] - w[i]) * (two[i] - w[i])
                        let code = Int(max(0, min(255, ((w[i] - m0) / d0).rounded())))
                        let r4 = m0 + d0 * (Float((code >> 4) << 4) + 7.5)
                        let r2 = m0 + d0 * (Float((code >> 6) << 6) + 31.5)
                        minMax += (r4 - w[i]) * (r4 - w[i]) + 0.25 * (r2 - w[i]) * (r2 - w[i])
                        chosen4 += (four[i] - w[i]) * (four[i] - w[i])
                        minMax4 += (r4 - w[i]) * (r4 - w[i])
                    }
                }
            }
            #expect(chosen <= minMax * 1.001, "\(name): \(chosen) vs \(minMax) with the min/max grid")
            if name == "mxfp4" {
                #expect(chosen4 < 0.8 * minMax4, "4-bit: \(chosen4) vs \(minMax4) with the min/max grid")
            } else {
                #expect(kept + searched == rows * cols / group, "a group took a grid less than 10 % better")
                #expect(kept > 0 && searched > 0, "\(kept) groups kept the min/max grid, \(searched) searched")
            }
        }
    }

    /// Level k decodes to the top bits of the 8-bit code that the full level stores: each plane is
    /// exactly the next bits, so a lower level is a prefix and nothing more.
    @Test func prefixLevelsAreTruncatedCodes() {
        let rows = 5
        let cols = 128
        let w = Self.randomMatrix(rows: rows, cols: cols, seed: 3)
        let q = w.withUnsafeBufferPointer {
            MatryoshkaQuantizer.quantize(
                $0.baseAddress!, rows: rows, cols: cols, scheme: .init(levels: [2, 4, 8], groupSize: 64))
        }
        let full = Self.dequantize(q, level: 2)
        for (level, bits) in [2, 4].enumerated() {
            let got = Self.dequantize(q, level: level)
            for r in 0..<rows {
                for c in 0..<cols {
                    let (m, d) = Self.grid(q, row: r, group: c / 64)
                    let code = d > 0 ? Int(((full[r * cols + c] - m) / d).rounded()) : 0
                    let shift = 1 << (8 - bits)
                    let want = m + d * (Float((code >> (8 - bits)) * shift) + Float(shift - 1) / 2)
                    #expect(abs(got[r * cols + c] - want) <= 1e-6 * max(1, abs(want)))
                }
            }
        }
    }

    struct KernelCase: CustomStringConvertible {
        var rows, cols, group, n: Int
        var levels: [Int]
        var description: String { "\(rows)x\(cols) g\(group) n\(n) \(levels)" }
    }

    static let kernelCases = [
        KernelCase(rows: 13, cols: 256, group: 64, n: 1, levels: [2, 4, 8]),
        KernelCase(rows: 5, cols: 128, group: 128, n: 3, levels: [4, 8]),
        KernelCase(rows: 37, cols: 512, group: 64, n: 2, levels: [2, 4, 6, 8]),
        KernelCase(rows: 9, cols: 48, group: 16, n: 2, levels: [2, 4, 8]),
        KernelCase(rows: 3, cols: 96, group: 32, n: 1, levels: [8]),
        KernelCase(rows: 6, cols: 2048, group: 64, n: 1, levels: [2, 4, 8]),  // 32 groups: two vector steps
        KernelCase(rows: 2, cols: 19200, group: 64, n: 1, levels: [4, 8]),  // 300 groups: two chunks
        KernelCase(rows: 3, cols: 1024, group: 128, n: 9, levels: [2, 4, 8])  // two token chunks
    ]

    /// The dispatched kernels on every path this CPU can run: the integer paths (int8 activations)
    /// against the integer reference up to float rounding, and within int8 activation rounding of
    /// the float reference; the scalar (float) path against the float reference.
    @Test(arguments: kernelCases)
    func qgemmMatchesReference(c: KernelCase) {
        let w = Self.randomMatrix(rows: c.rows, cols: c.cols, seed: 11)
        let x = Self.randomMatrix(rows: c.n, cols: c.cols, seed: 12).map { $0 * 10 }
        let scheme = MatryoshkaScheme(levels: c.levels, groupSize: c.group)
        let q = w.withUnsafeBufferPointer {
            MatryoshkaQuantizer.quantize($0.baseAddress!, rows: c.rows, cols: c.cols, scheme: scheme)
        }
        let act = ActivationBuffer(capacity: c.n * c.cols)
        for level in c.levels.indices {
            var keep: [[UInt8]] = []
            var scales: [UInt16] = []
            var m = Self.view(q, level: level, keep: &keep, scales: &scales)
            var want = [Float](repeating: 0, count: c.n * c.rows)
            spk_qgemm_ref(&m, x, c.n, c.cols, 0, c.rows, &want, c.rows)
            var wantInt = [Float](repeating: 0, count: c.n * c.rows)
            var reference = act.view(row: 0, n: c.n, cols: c.cols, group: c.group)
            spk_force_isa(Int32(SPK_ISA_PORTABLE.rawValue))
            spk_quantize_act(x, c.n, c.cols, &reference)
            let referenceQ = Array(UnsafeBufferPointer(start: reference.q, count: c.n * c.cols))
            spk_qgemm_ref_int(&m, &reference, 0, c.rows, &wantInt, c.rows)
            let deq = Self.dequantize(q, level: level)
            for isa in Ops.availableISAs {
                #expect(spk_force_isa(isa) == isa)
                let integer = spk_qgemm_is_integer(&m) != 0
                #expect(integer == (isa != Int32(SPK_ISA_SCALAR.rawValue)))
                var got = [Float](repeating: .nan, count: c.n * c.rows)
                var a = act.view(row: 0, n: c.n, cols: c.cols, group: c.group)
                spk_quantize_act(x, c.n, c.cols, &a)
                #expect(
                    Array(UnsafeBufferPointer(start: a.q, count: c.n * c.cols)) == referenceQ, "isa \(isa) quantizer")
                spk_qgemm(&m, x, c.n, c.cols, &a, 0, c.rows, &got, c.rows)
                for i in 0..<c.n {
                    for j in 0..<c.rows {
                        var mag: Float = 0
                        for t in 0..<c.cols { mag += abs(deq[j * c.cols + t] * x[i * c.cols + t]) }
                        let k = i * c.rows + j
                        if integer {
                            // Float rounding only (the integer sums are exact); int8 activations move the
                            // result by at most half a step of 1/127 of each group's max per value.
                            #expect(abs(got[k] - wantInt[k]) <= mag * 2e-5 + 1e-5, "isa \(isa) level \(level)")
                            #expect(abs(wantInt[k] - want[k]) <= mag * 0.01 + 1e-4, "level \(level)")
                        } else {
                            #expect(abs(got[k] - want[k]) <= mag * 1e-5 + 1e-5, "isa \(isa) level \(level)")
                        }
                    }
                }
            }
            spk_force_isa(-1)
            _ = (keep, scales)
        }
    }

    /// The 8-bit expert level stays close to the exact logits on every architecture's fixture.
    /// (Random-weight models are far more sensitive than trained ones: quantizing their dense part to
    /// 8 bits too moves logits by several percent, while on the trained demo model it moves
    /// perplexity by 0.003 %; that is checked by perplexity in RESULTS.md.)
    @Test(arguments: Paths.architectures.filter { !Paths.sampled.contains($0) })
    func eightBitLogitsCloseToFloat(arch: String) throws {
        let ref = try ConformanceTests.reference(arch)
        let options = Converter.Options(expertScheme: .init(levels: [2, 4, 8], groupSize: 16))
        let model = try Converted.model(Paths.fixtures + "/" + arch, options: options, tag: "q248-g16")
        let logits = try Session(model: model).evaluate(ref.ids, logits: .all)
        let err = maxAbsDiff(logits, ref.logits.values)
        #expect(err <= 0.02 * ref.maxAbs, "max abs error \(err) = \(err / ref.maxAbs) of max|logit|")
        let vocab = model.config.vocabSize
        var agree = 0
        for t in 0..<ref.ids.count {
            let row = t * vocab
            let a = (0..<vocab).max { logits[row + $0] < logits[row + $1] }!
            let b = (0..<vocab).max { ref.logits.values[row + $0] < ref.logits.values[row + $1] }!
            if a == b { agree += 1 }
        }
        #expect(agree >= ref.ids.count - 2, "argmax agrees on \(agree) of \(ref.ids.count)")
    }

    /// What each nested level costs in perplexity on the model's own text (512 tokens transformers
    /// sampled from the float model at temperature 1; fixtures of the newer families have them),
    /// experts quantized, dense part float. Guards against regressions, not the issue's targets
    /// (+0.2 % / +1 %): gpt-oss's experts come as MXFP4, whose non-uniform E2M1 grid a uniform
    /// level cannot hold exactly — measured +0.39 % at 8 bits and +3.36 % at 4 bits (group 32;
    /// +9.96 % at 4 bits before MXFP4 blocks got a grid of their own); see docs/QUANT.md.
    @Test(
        arguments: Paths.architectures.filter {
            FileManager.default.fileExists(atPath: Paths.fixtures + "/" + $0 + "/samples.npy")
        })
    func levelsCostLittlePerplexityOnTheModelsOwnText(arch: String) throws {
        let dir = Paths.fixtures + "/" + arch
        let tokens = try NPY.readInt(dir + "/samples.npy").values
        let exact = try Perplexity.evaluate(model: try Converted.model(dir), tokens: tokens, window: tokens.count)
        let options = Converter.Options(expertScheme: .init(levels: [2, 4, 8], groupSize: 32))
        let model = try Converted.model(dir, options: options, tag: "q248-g32")
        for (bits, bound) in [(8, 0.005), (4, 0.15)] {
            let q = try Perplexity.evaluate(
                model: model, tokens: tokens, window: tokens.count, options: .init(expertBits: bits))
            let cost = q.perplexity / exact.perplexity - 1
            #expect(cost <= bound, "\(bits)-bit: perplexity \(q.perplexity) vs \(exact.perplexity) (+\(cost * 100) %)")
        }
    }

    /// Reading only the prefix up to a level gives the same logits: bytes past it are never used.
    @Test func runtimeReadsOnlyThePrefixOfTheRequestedLevel() throws {
        let options = Converter.Options(expertScheme: .init(levels: [2, 4, 8], groupSize: 64))
        let path = try Converted.path(of: Paths.demo, options: options, tag: "q248")
        let tokens = Array(try NPY.readInt(Paths.demo + "/eval-tokens.npy").values.prefix(40))
        let want = try Session(model: try Model(path: path), options: .init(expertBits: 4)).evaluate(
            tokens, logits: .all)

        let copy = Paths.temporaryDirectory() + "/prefix.spw"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        let file = try SPWFile(path: copy)
        let h = FileHandle(forUpdatingAtPath: copy)!
        for e in file.experts {
            let start = Int(e.offset) + Int(e.levels[1].end)
            let end = Int(e.offset) + Int(e.levels[2].end)
            try h.seek(toOffset: UInt64(start))
            h.write(Data(count: end - start))  // wipe the 8-bit suffix
        }
        try h.close()
        let got = try Session(model: try Model(path: copy), options: .init(expertBits: 4)).evaluate(
            tokens, logits: .all)
        #expect(got == want)
        #expect(throws: (any Error).self) {
            try Session(model: try Model(path: copy), options: .init(expertBits: 8)).evaluate(tokens)
        }
    }

    /// zstd-compressed levels decode to the same bytes: identical logits at every level, and a
    /// damaged compressed level is an error naming the layer, expert and level.
    @Test func zstdLevelsGiveIdenticalLogits() throws {
        let raw = Converter.Options(expertScheme: .init(levels: [2, 4, 8], groupSize: 64))
        var zstd = raw
        zstd.zstdMinSaving = 0
        let rawPath = try Converted.path(of: Paths.demo, options: raw, tag: "q248")
        let zPath = try Converted.path(of: Paths.demo, options: zstd, tag: "q248-zstd")
        let file = try SPWFile(path: zPath)
        #expect(file.experts.contains { $0.levels.contains { $0.codec == .zstd } })
        #expect(try ModelMeta.decode(file.meta, path: zPath).expertZstdMinSaving == 0)
        let tokens = Array(try NPY.readInt(Paths.demo + "/eval-tokens.npy").values.prefix(24))
        for bits in [2, 4, 8] {
            let want = try Session(model: try Model(path: rawPath), options: .init(expertBits: bits)).evaluate(
                tokens, logits: .all)
            let got = try Session(model: try Model(path: zPath), options: .init(expertBits: bits)).evaluate(
                tokens, logits: .all)
            #expect(got == want, "\(bits)-bit logits differ with zstd levels")
        }
        let copy = Paths.temporaryDirectory() + "/zstd-flipped.spw"
        try FileManager.default.copyItem(atPath: zPath, toPath: copy)
        let h = FileHandle(forUpdatingAtPath: copy)!
        for e in file.experts where e.layer == 0 {  // damage level 0 of every layer-0 record
            #expect(e.levels[0].codec == .zstd)
            try h.seek(toOffset: e.offset + 40)
            let byte = h.readData(ofLength: 1)[0]
            try h.seek(toOffset: e.offset + 40)
            h.write(Data([byte ^ 0x5A]))
        }
        try h.close()
        do {
            _ = try Session(model: try Model(path: copy)).evaluate(tokens)
            Issue.record("a flipped zstd level was accepted")
        } catch {
            #expect("\(error)".contains("layer 0 expert") && "\(error)".contains("level 0"), "\(error)")
        }
    }

    @Test func badQuantizationRequests() throws {
        #expect(throws: QuantError.self) { try MatryoshkaScheme(levels: [2, 3], groupSize: 64).validate() }
        #expect(throws: QuantError.self) { try MatryoshkaScheme(levels: [4, 2], groupSize: 64).validate() }
        #expect(throws: QuantError.self) { try MatryoshkaScheme(levels: [2, 4, 8], groupSize: 24).validate() }
        let dir = Paths.fixtures + "/qwen2_moe"  // hidden 128, expert size 64
        let out = Paths.temporaryDirectory() + "/x.spw"
        do {
            _ = try Converter(
                input: dir, output: out, options: .init(expertScheme: .init(levels: [2, 4, 8], groupSize: 48))
            ).run()
            Issue.record("group 48 accepted for hidden size 128")
        } catch {
            #expect(
                "\(error)".contains(
                    "group size 48 does not divide the input dimension 128 of the expert gate/up projections (hidden size); group size 32 divides it"
                ))
        }
        #expect(
            QuantError.groupDoesNotDivide(64, cols: 96, tensor: "t").description.hasSuffix("; group size 32 divides it")
        )
        #expect(
            QuantError.groupDoesNotDivide(64, cols: 100, tensor: "t").description.hasSuffix("; no multiple of 16 does"))
        #expect(!FileManager.default.fileExists(atPath: out))
        let model = try Converted.model(dir, options: .init(), tag: "default")
        do {
            _ = try Session(model: model, options: .init(expertBits: 3))
            Issue.record("3-bit level accepted")
        } catch { #expect("\(error)".contains("3-bit experts requested but the file stores levels 2, 4, 8")) }
    }
}
