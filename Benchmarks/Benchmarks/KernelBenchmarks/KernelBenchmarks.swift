import Benchmark
import CSparrowKernels
import Sparrow
@_spi(Internals) import SparrowRuntime
import SparrowFormat
import SparrowQuant
import SparrowKernels

// Weight-streaming throughput of the matrix-vector kernels (decode's inner loop), next to a
// memory-read probe measured in the same run. Matrices are larger than the last-level cache so the
// figures are DRAM-bound, as a big model's decode is. Custom metric "MB/s": weight bytes streamed.

let rows = 65536  // every matrix at least 2.5× the 32 MiB L3, so the figures are DRAM-bound
let cols = 4096
let threads = 2

/// A large random matrix quantized once, viewed at each level.
let quantized: QuantizedMatrix = {
    var w = [Float](repeating: 0, count: rows * cols)
    var s: UInt64 = 1
    for i in w.indices {
        s = s &* 6_364_136_223_846_793_005 &+ 1
        w[i] = Float(Int64(bitPattern: s) >> 40) / Float(1 << 23) * 0.05
    }
    return w.withUnsafeBufferPointer {
        MatryoshkaQuantizer.quantize(
            $0.baseAddress!, rows: rows, cols: cols, scheme: .init(levels: [2, 4, 8], groupSize: 64))
    }
}()

/// Level 0 (2-bit plane and scales) of a normally distributed matrix (what trained and the
/// generator's random weights look like), raw and zstd-compressed as the converter stores it.
let normalLevel0: (raw: [UInt8], zstd: [UInt8]) = {
    let r = 4096, c = 2048
    var w = [Float](repeating: 0, count: r * c)
    var s: UInt64 = 7
    for i in w.indices {
        var sum: Float = 0
        for _ in 0..<4 {
            s = s &* 6_364_136_223_846_793_005 &+ 1
            sum += Float(Int64(bitPattern: s) >> 40) / Float(1 << 23)
        }
        w[i] = sum * 0.02
    }
    let q = w.withUnsafeBufferPointer {
        MatryoshkaQuantizer.quantize($0.baseAddress!, rows: r, cols: c, scheme: .init(levels: [2, 4, 8], groupSize: 64))
    }
    let raw = q.scales.withUnsafeBytes { Array($0) } + q.planes[0]
    return (raw, try! Zstd.compress(raw, level: Converter.zstdLevel))
}()

let bf16: [UInt16] = (0..<(rows * cols)).map { UInt16(truncatingIfNeeded: 0x3C00 &+ ($0 & 0xFF)) }
let x: [Float] = (0..<cols).map { Float($0 % 7) * 0.1 - 0.3 }
let probe = [UInt64](repeating: 1, count: 64 << 20)  // 512 MiB

func matrix(level: Int) -> WeightMatrix {
    let planes = (0...level).map { k in quantized.planes[k].withUnsafeBytes { UnsafeRawPointer($0.baseAddress!) } }
    return quantized.scales.withUnsafeBytes {
        WeightMatrix(
            scales: $0.baseAddress!, planes: planes, widths: Array(quantized.scheme.planeWidths[0...level]), rows: rows,
            cols: cols, group: 64)
    }
}

/// Bytes per second of one pass over the probe buffer: 64 tasks of 8 MiB claimed dynamically, as
/// the kernels split their rows, so a thread descheduled by the VM delays only its own share.
func probeOnce() -> Double {
    let start = BenchmarkClock.now
    probe.withUnsafeBufferPointer { p in
        let tasks = 64
        let per = p.count / tasks
        var sums = [UInt64](repeating: 0, count: tasks)
        sums.withUnsafeMutableBufferPointer { s in
            Parallel.forEach(tasks) { t in s[t] = spk_read_sum(p.baseAddress! + t * per, per * 8) }
        }
        blackHole(sums)
    }
    return Double(probe.count * 8) / Double((BenchmarkClock.now - start).nanoseconds()) * 1e9
}

let benchmarks: @Sendable () -> Void = {
    let config = Benchmark.Configuration(
        metrics: [.wallClock, .custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)],
        warmupIterations: 2, maxDuration: .seconds(3), maxIterations: 200)
    let y = UnsafeMutablePointer<Float>.allocate(capacity: rows)
    let act = ActivationBuffer(capacity: cols)

    Benchmark("memory read probe (512 MiB, \(threads) threads)", configuration: config) { benchmark in
        for _ in benchmark.scaledIterations {
            benchmark.measurement(
                .custom("MB/s", polarity: .prefersLarger, useScalingFactor: false), Int(probeOnce() / 1e6))
        }
    }

    // This VM's bandwidth drifts by 2× between benchmarks (other tenants): the fair figure is the
    // ratio of a kernel to the probe run right before it, pair by pair. Every integer path this CPU
    // runs (spk_set_process_isa switches the pool's workers too), so paths compare in one run.
    let paths = Ops.availableISAs.filter { $0 != Int32(SPK_ISA_SCALAR.rawValue) }
    for isa in paths {
        let name = String(cString: spk_isa_label(isa))
        for (level, bits) in [2, 4, 8].enumerated() {
            Benchmark("matvec q\(bits) \(name) ÷ probe, interleaved (‰)", configuration: config) { benchmark in
                let w = matrix(level: level)
                let previous = spk_process_isa()
                spk_set_process_isa(isa)
                defer { spk_set_process_isa(previous) }
                for _ in benchmark.scaledIterations {
                    let probe = probeOnce()
                    let start = BenchmarkClock.now
                    x.withUnsafeBufferPointer {
                        Ops.matmul(w, $0.baseAddress!, n: 1, into: y, threads: threads, act: act)
                    }
                    let ns = Double((BenchmarkClock.now - start).nanoseconds())
                    let kernel = Double(w.byteCount) / ns * 1e9
                    benchmark.measurement(
                        .custom("MB/s", polarity: .prefersLarger, useScalingFactor: false), Int(kernel / probe * 1000))
                }
            }
        }
    }

    Benchmark("matvec bf16 \(rows)x\(cols)", configuration: config) { benchmark in
        let w = bf16.withUnsafeBytes { WeightMatrix(base: $0.baseAddress!, type: SPK_BF16, rows: rows, cols: cols) }
        for _ in benchmark.scaledIterations {
            let start = BenchmarkClock.now
            x.withUnsafeBufferPointer { Ops.matmul(w, $0.baseAddress!, n: 1, into: y, threads: threads) }
            let ns = Double((BenchmarkClock.now - start).nanoseconds())
            benchmark.measurement(
                .custom("MB/s", polarity: .prefersLarger, useScalingFactor: false), Int(Double(w.byteCount) / ns * 1000)
            )
        }
    }

    let saved = 100 - 100 * normalLevel0.zstd.count / normalLevel0.raw.count
    Benchmark("zstd decode of a 2-bit level (normal weights, \(saved) % saved, 1 thread)", configuration: config) {
        benchmark in
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: normalLevel0.raw.count, alignment: 64)
        defer { out.deallocate() }
        for _ in benchmark.scaledIterations {
            let start = BenchmarkClock.now
            try! normalLevel0.zstd.withUnsafeBytes { try Zstd.decompress($0, into: out, what: "benchmark") }
            let ns = Double((BenchmarkClock.now - start).nanoseconds())
            benchmark.measurement(
                .custom("MB/s", polarity: .prefersLarger, useScalingFactor: false), Int(Double(out.count) / ns * 1000))
        }
    }

    for (level, bits) in [2, 4, 8].enumerated() {
        Benchmark("matvec q\(bits) matryoshka \(rows)x\(cols)", configuration: config) { benchmark in
            let w = matrix(level: level)
            for _ in benchmark.scaledIterations {
                let start = BenchmarkClock.now
                x.withUnsafeBufferPointer { Ops.matmul(w, $0.baseAddress!, n: 1, into: y, threads: threads, act: act) }
                let ns = Double((BenchmarkClock.now - start).nanoseconds())
                benchmark.measurement(
                    .custom("MB/s", polarity: .prefersLarger, useScalingFactor: false),
                    Int(Double(w.byteCount) / ns * 1000))
            }
        }
    }
}
