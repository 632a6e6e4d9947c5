import CSparrowKernels
import Foundation

/// The elementwise and small operations of a transformer block, on f32 activations.
/// All pointer arguments are caller-owned; nothing here allocates.
public enum Ops {
    /// y = W·x for `n` activation rows: `y[i, j] = Σ_t x[i, t] · W[j, t]`.
    /// `x` is `[n, W.cols]` (row stride `ldx`), `y` is `[n, W.rows]` (row stride `ldy`).
    /// Rows of W are split over `threads` workers when the matrix is big enough to pay for it.
    /// A quantized W needs `act`, space for x quantized to int8 (`n × W.cols` values, starting at
    /// the caller's chosen row so parallel callers do not share it).
    public static func matmul(
        _ w: WeightMatrix, _ x: UnsafePointer<Float>, n: Int, ldx: Int? = nil,
        into y: UnsafeMutablePointer<Float>, ldy: Int? = nil, threads: Int,
        act: ActivationBuffer? = nil, actRow: Int = 0
    ) {
        let ldx = ldx ?? w.cols
        let ldy = ldy ?? w.rows
        let work = w.rows * w.cols * max(n, 1)
        let chunks = (threads > 1 && work >= 1 << 16) ? min(threads * (n > 1 ? 2 : 1), w.rows / 4) : 1
        let per = chunks > 1 ? ((w.rows + chunks - 1) / chunks + 3) & ~3 : w.rows
        let xp = UnsafeMutablePointer(mutating: x)
        switch w.storage {
        case .float(let base, let type):
            if chunks <= 1 {
                spk_gemm(x, n, ldx, w.cols, base, type, w.cols, 0, w.rows, y, ldy)
                return
            }
            Parallel.forEach(chunks) { c in
                let r0 = c * per
                let r1 = min(w.rows, r0 + per)
                if r0 < r1 { spk_gemm(xp, n, ldx, w.cols, base, type, w.cols, r0, r1, y, ldy) }
            }
        case .quantized(let q):
            var qm = q
            var a: spk_qact? = nil
            if let act, spk_qgemm_is_integer(&qm) != 0 {
                var v = act.view(row: actRow, n: n, cols: w.cols, group: q.group)
                spk_quantize_act(x, n, ldx, &v)
                a = v
            }
            if chunks <= 1 {
                if var av = a {
                    spk_qgemm(&qm, x, n, ldx, &av, 0, w.rows, y, ldy)
                } else {
                    spk_qgemm(&qm, x, n, ldx, nil, 0, w.rows, y, ldy)
                }
                return
            }
            Parallel.forEach(chunks) { c in
                let r0 = c * per
                let r1 = min(w.rows, r0 + per)
                guard r0 < r1 else { return }
                var m = qm
                if var av = a {
                    spk_qgemm(&m, xp, n, ldx, &av, r0, r1, y, ldy)
                } else {
                    spk_qgemm(&m, xp, n, ldx, nil, r0, r1, y, ldy)
                }
            }
        }
    }

    /// `out[j] = q · keys[j * stride ..< j * stride + dim]` for j in 0..<count (attention scores).
    @inlinable
    public static func dots(
        _ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, stride: Int, dim: Int, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        spk_gemm(q, 1, dim, dim, keys, SPK_F32, stride, 0, count, out, count)
    }

    /// `dots` over keys stored as `type` (f32, f16 or bf16).
    public static func dots(
        _ q: UnsafePointer<Float>, keys: UnsafeRawPointer, type: spk_dtype, stride: Int, dim: Int, count: Int,
        into out: UnsafeMutablePointer<Float>
    ) {
        spk_gemm(q, 1, dim, dim, keys, type, stride, 0, count, out, count)
    }

    /// Root-mean-square normalisation of `count` rows of width `dim`, scaled by `weight` (`[dim]`).
    public static func rmsNorm(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, dim: Int, count: Int = 1, eps: Float,
        into y: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<count {
            let xr = x + r * dim
            let yr = y + r * dim
            var ss: Float = 0
            for i in 0..<dim { ss += xr[i] * xr[i] }
            let scale = 1 / (ss / Float(dim) + eps).squareRoot()
            for i in 0..<dim { yr[i] = weight[i] * (xr[i] * scale) }
        }
    }

    /// Applies rotary position embedding in place to `heads` vectors of size `headDim`, `stride`
    /// apart (default: packed), at `position`: dimension i turns with i + headDim/2 (the "rotate
    /// half" layout of Hugging Face Llama-family models) or, `interleaved`, with its neighbour
    /// (2i with 2i + 1: DeepSeek's complex layout). `invFreq` is `[headDim / 2]`.
    public static func rope(
        _ x: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, position: Int, invFreq: UnsafePointer<Float>,
        stride: Int? = nil, interleaved: Bool = false
    ) {
        let half = headDim / 2
        let step = stride ?? headDim
        for i in 0..<half {
            let angle = Float(position) * invFreq[i]
            let c = cos(angle)
            let s = sin(angle)
            let (ia, ib) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
            for h in 0..<heads {
                let v = x + h * step
                let a = v[ia]
                let b = v[ib]
                v[ia] = a * c - b * s
                v[ib] = b * c + a * s
            }
        }
    }

    /// `n` values of float type `type` (f32, f16, bf16) at `src` as f32 into `out`.
    public static func toF32(_ src: UnsafeRawPointer, type: spk_dtype, _ n: Int, into out: UnsafeMutablePointer<Float>)
    {
        spk_to_f32(src, type, out, n)
    }

    /// `n` f32 values as float type `type` (f32, f16, bf16).
    public static func fromF32(
        _ src: UnsafePointer<Float>, type: spk_dtype, _ n: Int, into out: UnsafeMutableRawPointer
    ) {
        spk_from_f32(src, out, type, n)
    }

    /// Reads `bytes` bytes (a multiple of 8) at `p` and returns their sum: an opaque call, so the
    /// reads happen (bringing mapped pages into memory).
    @discardableResult
    public static func touch(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 { spk_read_sum(p, bytes) }

    /// Softmax in place over `n` values.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) { softmax(x, n, sink: -.infinity) }

    /// Indices and values of the `k` largest of `count` values, in descending order (ties: lower
    /// index first).
    public static func topK(
        _ v: UnsafePointer<Float>, count: Int, k: Int, ids: UnsafeMutablePointer<Int32>,
        values: UnsafeMutablePointer<Float>
    ) {
        for j in 0..<k {
            ids[j] = -1
            values[j] = -.infinity
        }
        for x in 0..<count {
            let val = v[x]
            if val <= values[k - 1] && ids[k - 1] >= 0 { continue }
            var j = k - 1
            while j > 0 && (val > values[j - 1] || ids[j - 1] < 0) {
                ids[j] = ids[j - 1]
                values[j] = values[j - 1]
                j -= 1
            }
            ids[j] = Int32(x)
            values[j] = val
        }
    }

    /// `gate[i] = silu(gate[i]) * up[i]` for i in 0..<n (SwiGLU).
    public static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        spk_swiglu(n, gate, up)
    }

    /// `gate[i] = g' · sigmoid(alpha · g') · (u' + 1)` with `g' = min(gate[i], limit)` and
    /// `u' = clamp(up[i], ±limit)` (gpt-oss's experts).
    public static func clampedSwiglu(
        _ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int, limit: Float, alpha: Float
    ) {
        spk_clamped_swiglu(n, gate, up, limit, alpha)
    }

    /// `x[r · dim + i] += b[i]` for every row r.
    public static func addBias(_ x: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, rows: Int, dim: Int) {
        for r in 0..<rows { spk_axpy(dim, 1, b, x + r * dim) }
    }

    /// Softmax over `x[0..<n]` and one more logit, `sink`, whose share is dropped (gpt-oss's
    /// attention sinks): `x[i] = exp(x[i] − m) / (Σ exp(x[j] − m) + exp(sink − m))`.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int, sink: Float) {
        var m = sink
        for i in 0..<n { m = max(m, x[i]) }
        var sum = exp(sink - m)
        for i in 0..<n {
            let e = exp(x[i] - m)
            x[i] = e
            sum += e
        }
        let inv = 1 / sum
        for i in 0..<n { x[i] *= inv }
    }

    /// y += a · x over n values.
    @inlinable
    public static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        spk_axpy(n, a, x, y)
    }

    /// The logistic sigmoid.
    @inlinable
    public static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// Name of the kernel path in use ("avx512", "avx2", "portable", "neon", "dotprod", "i8mm", ...):
    /// the best this CPU can run, or the one `SPARROW_ISA` names.
    public static var isa: String { String(cString: spk_isa_name()) }

    /// Why `SPARROW_ISA` cannot be honoured (not a path's name, or a path this CPU cannot run); nil
    /// when it is unset or usable. Opening a model refuses to run with such a setting.
    public static var isaEnvironmentError: String? { spk_isa_env_error().map { String(cString: $0) } }

    /// The kernel paths this CPU can run, slowest first (what the tests force one by one).
    public static var availableISAs: [Int32] {
        (0..<Int32(SPK_ISA_COUNT.rawValue)).filter { spk_isa_available($0) != 0 }
    }
}
