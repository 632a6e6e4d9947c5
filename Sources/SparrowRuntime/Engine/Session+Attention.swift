import CSparrowKernels
import Foundation
import SparrowKernels

extension Session {
    /// Causal attention for `n` new tokens whose normalised input is in `scratch.xn` — grouped-query,
    /// or latent where the model has it (`Session+LatentAttention`); appends their keys and values
    /// to the cache and leaves the projected output in `scratch.proj`.
    func attention(layer l: Int, weights lw: LayerWeights, n: Int) {
        if let mla = config.latentAttention {
            latentAttention(layer: l, weights: lw, mla: mla, n: n)
            return
        }
        projectQKV(layer: l, weights: lw, n: n)
        attend(layer: l, sinks: lw.sinks, n: n)
        Ops.matmul(lw.o, scratch.attn.pointer, n: n, into: scratch.proj.pointer, threads: threads, act: scratch.actIn)
        if let b = lw.oBias { Ops.addBias(scratch.proj.pointer, b, rows: n, dim: config.hiddenSize) }
    }

    /// Queries, keys and values of the `n` new tokens (biases, q/k norms, clipping, RoPE as the
    /// architecture has them) into `scratch.q`; keys and values appended to layer `l`'s cache.
    private func projectQKV(layer l: Int, weights lw: LayerWeights, n: Int) {
        let c = config
        let s = scratch
        let hd = c.headDim
        let heads = c.headCount
        let kvHeads = c.kvHeadCount
        let qDim = heads * hd
        let kvDim = kvHeads * hd
        let q = s.q.pointer
        let k = s.k.pointer
        let v = s.v.pointer

        Ops.matmul(lw.q!, s.xn.pointer, n: n, into: q, threads: threads, act: s.actIn)
        Ops.matmul(lw.k!, s.xn.pointer, n: n, into: k, threads: threads, act: s.actIn)
        Ops.matmul(lw.v!, s.xn.pointer, n: n, into: v, threads: threads, act: s.actIn)
        if let b = lw.qBias { Ops.addBias(q, b, rows: n, dim: qDim) }
        if let b = lw.kBias { Ops.addBias(k, b, rows: n, dim: kvDim) }
        if let b = lw.vBias { Ops.addBias(v, b, rows: n, dim: kvDim) }
        switch c.qkNorm {
        case .none: break
        case .perHead:
            Ops.rmsNorm(q, weight: lw.qNorm!, dim: hd, count: n * heads, eps: c.rmsNormEps, into: q)
            Ops.rmsNorm(k, weight: lw.kNorm!, dim: hd, count: n * kvHeads, eps: c.rmsNormEps, into: k)
        case .full:
            Ops.rmsNorm(q, weight: lw.qNorm!, dim: qDim, count: n, eps: c.rmsNormEps, into: q)
            Ops.rmsNorm(k, weight: lw.kNorm!, dim: kvDim, count: n, eps: c.rmsNormEps, into: k)
        }
        // OLMoE clamps after the q/k norms.
        if let clip = c.clipQKV {
            clamp(q, count: n * qDim, clip)
            clamp(k, count: n * kvDim, clip)
            clamp(v, count: n * kvDim, clip)
        }
        model.invFreq.withUnsafeBufferPointer { inv in
            for i in 0..<n {
                Ops.rope(q + i * qDim, heads: heads, headDim: hd, position: position + i, invFreq: inv.baseAddress!)
                Ops.rope(k + i * kvDim, heads: kvHeads, headDim: hd, position: position + i, invFreq: inv.baseAddress!)
            }
        }
        keys[l].store(k, at: position, count: n)
        values[l].store(v, at: position, count: n)
    }

    /// Softmax(q·kᵀ/√d)·v for the `n` new tokens against layer `l`'s cache (causal, within the
    /// layer's sliding window where it has one; with each head's sink logit in the softmax where
    /// there are `sinks`) into `scratch.attn`: one task per (token, head), chunks over the threads,
    /// each owning a row of score scratch.
    private func attend(layer l: Int, sinks: UnsafePointer<Float>?, n: Int) {
        let c = config
        let s = scratch
        let hd = c.headDim
        let heads = c.headCount
        let qDim = heads * hd
        let kvDim = c.kvHeadCount * hd
        let q = s.q.pointer
        let kc = keys[l]
        let vc = values[l]
        let tasks = n * heads
        let chunks = min(s.scoreChunks, tasks)
        let per = (tasks + chunks - 1) / chunks
        let group = heads / c.kvHeadCount
        let scale = model.attentionScale / Float(hd).squareRoot()
        let out = s.attn.pointer
        let base = position
        let window = c.window(layer: l)
        let scoreRows = s.scores.pointer
        let ctx = contextLength
        let kvType = kc.type.kernelType
        let f16 = kc.type == .f16
        split(chunks) { chunk in
            let sc = scoreRows + chunk * ctx
            let row = s.kvRow.pointer + chunk * hd
            for task in (chunk * per)..<min(tasks, (chunk + 1) * per) {
                let i = task / heads
                let head = task % heads
                let kvh = head / group
                let pos = base + i
                let first = window.map { max(0, pos - $0 + 1) } ?? 0
                let count = pos - first + 1
                let qv = q + i * qDim + head * hd
                let (head1, tail) = kc.runs(from: first, count: count)  // the tail wraps a ring
                Ops.dots(
                    qv, keys: kc.at(first, kvh * hd), type: kvType, stride: kvDim, dim: hd, count: head1.1, into: sc)
                if tail.1 > 0 {
                    Ops.dots(
                        qv, keys: kc.at(tail.0, kvh * hd), type: kvType, stride: kvDim, dim: hd, count: tail.1,
                        into: sc + head1.1)
                }
                for j in 0..<count { sc[j] *= scale }
                if let sinks { Ops.softmax(sc, count, sink: sinks[head]) } else { Ops.softmax(sc, count) }
                let o = out + i * qDim + head * hd
                o.initialize(repeating: 0, count: hd)
                for j in 0..<count {
                    let value = vc.at(first + j, kvh * hd)
                    if f16 {
                        Ops.toF32(value, type: SPK_F16, hd, into: row)
                        Ops.axpy(hd, sc[j], row, o)
                    } else {
                        Ops.axpy(hd, sc[j], value.assumingMemoryBound(to: Float.self), o)
                    }
                }
            }
        }
    }

    private func clamp(_ x: UnsafeMutablePointer<Float>, count: Int, _ clip: Float) {
        for i in 0..<count { x[i] = min(max(x[i], -clip), clip) }
    }

}
