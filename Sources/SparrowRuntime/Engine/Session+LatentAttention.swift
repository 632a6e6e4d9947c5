import CSparrowKernels
import SparrowKernels

/// DeepSeek's multi-head latent attention over a compressed KV cache: per token and layer the
/// cache holds only the normalised latent (`kvRank`) and the rotated key (`ropeDim`), not the
/// heads' keys and values. Scores and outputs never expand them: the key up-projection is absorbed
/// into each head's query (`q_nope · W_uk = (W_ukᵀ q_nope) · latent`) and the value up-projection
/// applied once to each head's attention-weighted latent.
extension Session {
    /// Latent attention for the `n` new tokens whose normalised input is in `scratch.xn`: appends
    /// their latents to layer `l`'s cache and leaves the projected output in `scratch.proj`.
    func latentAttention(layer l: Int, weights lw: LayerWeights, mla: LatentAttention, n: Int) {
        let s = scratch
        let lat = lw.latent!
        let heads = config.headCount
        let qk = config.headDim
        let width = mla.cachedWidth
        let q = s.q.pointer
        let kv = s.k.pointer
        if let qa = lat.queryA, let qb = lat.queryB, let norm = lat.queryANorm {
            let bottleneck = s.latentQA.pointer
            Ops.matmul(qa, s.xn.pointer, n: n, into: bottleneck, threads: threads, act: s.actIn)
            Ops.rmsNorm(
                bottleneck, weight: norm, dim: mla.queryRank, count: n, eps: Self.latentNormEps, into: bottleneck)
            Ops.matmul(qb, bottleneck, n: n, into: q, threads: threads, act: s.actIn)
        } else {
            Ops.matmul(lw.q!, s.xn.pointer, n: n, into: q, threads: threads, act: s.actIn)
        }
        Ops.matmul(lat.kvA, s.xn.pointer, n: n, into: kv, threads: threads, act: s.actIn)
        model.invFreq.withUnsafeBufferPointer { inv in
            for i in 0..<n {
                let row = kv + i * width
                Ops.rmsNorm(row, weight: lat.kvANorm, dim: mla.kvRank, count: 1, eps: Self.latentNormEps, into: row)
                Ops.rope(
                    row + mla.kvRank, heads: 1, headDim: mla.ropeDim, position: position + i, invFreq: inv.baseAddress!,
                    interleaved: mla.interleavedRope)
                Ops.rope(
                    q + i * heads * qk + mla.nopeDim, heads: heads, headDim: mla.ropeDim, position: position + i,
                    invFreq: inv.baseAddress!, stride: qk, interleaved: mla.interleavedRope)
            }
        }
        keys[l].store(kv, at: position, count: n)
        absorbQueries(lat.kvB, mla: mla, n: n)
        attendLatent(layer: l, mla: mla, n: n)
        expandValues(lat.kvB, mla: mla, n: n)
        Ops.matmul(lw.o, s.attn.pointer, n: n, into: s.proj.pointer, threads: threads, act: s.actIn)
    }

    /// The latent norms are built without the config's epsilon (transformers' default).
    static let latentNormEps: Float = 1e-6

    /// Each (token, head)'s query in latent space: `W_ukᵀ q_nope` (`kvRank`) followed by its
    /// rotated part times the RoPE scaling's attention factor², into `latentQuery`. Each row of
    /// `W_uk` is decoded once and applied to every token; heads run in parallel.
    private func absorbQueries(_ kvB: WeightMatrix, mla: LatentAttention, n: Int) {
        let s = scratch
        let heads = config.headCount
        let qk = config.headDim
        let width = mla.cachedWidth
        let perHead = mla.nopeDim + mla.valueDim
        let q = s.q.pointer
        let out = s.latentQuery.pointer
        let ropeScale = model.attentionScale
        let chunks = min(s.scoreChunks, heads)
        split(chunks) { chunk in
            let row = s.kvRow.pointer + chunk * max(qk, mla.kvRank)
            for h in stride(from: chunk, to: heads, by: chunks) {
                for i in 0..<n {
                    let dst = out + (i * heads + h) * width
                    dst.initialize(repeating: 0, count: mla.kvRank)
                    let rot = q + i * heads * qk + h * qk + mla.nopeDim
                    for d in 0..<mla.ropeDim { dst[mla.kvRank + d] = rot[d] * ropeScale }
                }
                for r in 0..<mla.nopeDim {
                    kvB.row(h * perHead + r, into: row)
                    for i in 0..<n {
                        Ops.axpy(mla.kvRank, q[i * heads * qk + h * qk + r], row, out + (i * heads + h) * width)
                    }
                }
            }
        }
    }

    /// Softmax over the cached positions of `latentQuery · [latent | rotated key]` (causal), and
    /// each (token, head)'s probability-weighted latent into `latentOut` `[heads, n, kvRank]`.
    private func attendLatent(layer l: Int, mla: LatentAttention, n: Int) {
        let s = scratch
        let heads = config.headCount
        let width = mla.cachedWidth
        let cache = keys[l]
        let kvType = cache.type.kernelType
        let f16 = cache.type == .f16
        let scale = Float(mla.scoreScale) / Float(config.headDim).squareRoot()
        let tasks = n * heads
        let chunks = min(s.scoreChunks, tasks)
        let per = (tasks + chunks - 1) / chunks
        let base = position
        let ctx = contextLength
        let query = s.latentQuery.pointer
        let out = s.latentOut.pointer
        split(chunks) { chunk in
            let sc = s.scores.pointer + chunk * ctx
            let row = s.kvRow.pointer + chunk * max(self.config.headDim, mla.kvRank)
            for task in (chunk * per)..<min(tasks, (chunk + 1) * per) {
                let i = task / heads
                let h = task % heads
                let count = base + i + 1
                Ops.dots(
                    query + (i * heads + h) * width, keys: cache.at(0), type: kvType, stride: width, dim: width,
                    count: count, into: sc)
                for j in 0..<count { sc[j] *= scale }
                Ops.softmax(sc, count)
                let o = out + (h * n + i) * mla.kvRank
                o.initialize(repeating: 0, count: mla.kvRank)
                for j in 0..<count {
                    if f16 {
                        Ops.toF32(cache.at(j), type: SPK_F16, mla.kvRank, into: row)
                        Ops.axpy(mla.kvRank, sc[j], row, o)
                    } else {
                        Ops.axpy(mla.kvRank, sc[j], cache.at(j).assumingMemoryBound(to: Float.self), o)
                    }
                }
            }
        }
    }

    /// Each head's value up-projection `W_uv` applied to its weighted latents, into `attn`
    /// `[n, heads × valueDim]` (the output projection's input).
    private func expandValues(_ kvB: WeightMatrix, mla: LatentAttention, n: Int) {
        let s = scratch
        let heads = config.headCount
        let v = mla.valueDim
        let perHead = mla.nopeDim + v
        for h in 0..<heads {
            let wuv = kvB.rows((h * perHead + mla.nopeDim)..<((h + 1) * perHead))
            Ops.matmul(
                wuv, s.latentOut.pointer + h * n * mla.kvRank, n: n, into: s.headOut.pointer, threads: threads,
                act: s.actIn)
            for i in 0..<n {
                (s.attn.pointer + i * heads * v + h * v).update(from: s.headOut.pointer + i * v, count: v)
            }
        }
    }
}
