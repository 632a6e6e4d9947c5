import SparrowKernels

extension Session {
    /// Runs `tokens` (at most `batchSize`) through the model at the current position, appending to the
    /// KV cache. Writes the final logits of every row (`allRows`) or only of the last row into `dest`.
    func forward(_ tokens: UnsafeBufferPointer<Int>, logitsInto dest: UnsafeMutablePointer<Float>?, allRows: Bool)
        throws(SparrowError)
    {
        let c = config
        let w = model.weights
        let s = scratch
        let n = tokens.count
        let h = c.hiddenSize
        let x = s.x.pointer
        let xn = s.xn.pointer

        if let rows = embeddingRows {
            for (i, t) in tokens.enumerated() { try rows.read(t, into: x + i * h) }
        } else {
            for (i, t) in tokens.enumerated() { w.embedding.row(t, into: x + i * h) }
        }

        for l in 0..<c.layerCount {
            let lw = w.layers[l]
            Ops.rmsNorm(x, weight: lw.attnNorm, dim: h, count: n, eps: c.rmsNormEps, into: xn)
            let started = timeline?.now()
            attention(layer: l, weights: lw, n: n)
            if let t = timeline, let started { t.add(.attention, layer: l, from: started, to: t.now()) }
            for i in 0..<(n * h) { x[i] += s.proj.pointer[i] }

            Ops.rmsNorm(x, weight: lw.ffnNorm, dim: h, count: n, eps: c.rmsNormEps, into: xn)
            if let mlp = lw.mlp {
                denseMLP(mlp, n: n, into: s.moeOut.pointer)
            } else {
                try moe(layer: l, weights: lw, n: n)
            }
            for i in 0..<(n * h) { x[i] += s.moeOut.pointer[i] }
            if n == 1 { scheduler.refinePrediction(after: l, hidden: x, cache: expertCache) }
        }
        position += n
        if n == 1 { scheduler.tokenFinished(cache: expertCache) }

        guard let dest else { return }
        let rows = allRows ? n : 1
        let first = allRows ? 0 : n - 1
        Ops.rmsNorm(x + first * h, weight: w.finalNorm, dim: h, count: rows, eps: c.rmsNormEps, into: xn)
        Ops.matmul(w.lmHead, xn, n: rows, into: dest, threads: threads, act: scratch.actIn)
    }

    /// SwiGLU MLP over `n` rows of `xn` into `out` (`[n, H]`).
    func denseMLP(_ m: MLPWeights, n: Int, into out: UnsafeMutablePointer<Float>) {
        let s = scratch
        m.forward(
            s.xn.pointer, rows: n, gate: s.mlpGate.pointer, up: s.mlpUp.pointer, into: out, threads: threads,
            act: s.actIn, actMid: s.actIn)
    }
}
