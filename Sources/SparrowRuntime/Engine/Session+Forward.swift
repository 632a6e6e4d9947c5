import SparrowKernels

extension Session {
    /// Runs `tokens` (at most `batchSize`) through the model at the current position, appending to the
    /// KV cache. Writes the final logits of every row (`allRows`) or only of the last row into `dest`.
    func forward(_ tokens: UnsafeBufferPointer<Int>, logitsInto dest: UnsafeMutablePointer<Float>?, allRows: Bool)
        throws(SparrowError)
    {
        let n = tokens.count
        let x = scratch.x.pointer
        try embed(tokens, into: x)
        for l in 0..<config.layerCount {
            try layer(l, n: n, prompt: n > 1)
            if n == 1 { scheduler.refinePrediction(after: l, hidden: x, cache: expertCache) }
        }
        position += n
        if n == 1 { scheduler.tokenFinished(cache: expertCache) }
        guard let dest else { return }
        let first = allRows ? 0 : n - 1
        head(x + first * config.hiddenSize, rows: allRows ? n : 1, into: dest)
    }

    /// The embedding rows of `tokens` into `x` (`[n, H]`).
    func embed(_ tokens: UnsafeBufferPointer<Int>, into x: UnsafeMutablePointer<Float>) throws(SparrowError) {
        let h = config.hiddenSize
        if let rows = embeddingRows {
            for (i, t) in tokens.enumerated() { try rows.read(t, into: x + i * h) }
        } else {
            for (i, t) in tokens.enumerated() { model.weights.embedding.row(t, into: x + i * h) }
        }
    }

    /// Decoder layer `l` on the `n` rows of `scratch.x` at positions `position…`: attention, then
    /// the MLP or MoE block, each added to the residual. `prompt`: part of a prompt (`moe`).
    func layer(_ l: Int, n: Int, prompt: Bool) throws(SparrowError) {
        let c = config
        let s = scratch
        let lw = model.weights.layers[l]
        let h = c.hiddenSize
        let x = s.x.pointer
        let xn = s.xn.pointer
        Ops.rmsNorm(x, weight: lw.attnNorm, dim: h, count: n, eps: c.rmsNormEps, into: xn)
        let started = timeline?.now()
        attention(layer: l, weights: lw, n: n)
        if let t = timeline, let started { t.add(.attention, layer: l, from: started, to: t.now()) }
        for i in 0..<(n * h) { x[i] += s.proj.pointer[i] }

        Ops.rmsNorm(x, weight: lw.ffnNorm, dim: h, count: n, eps: c.rmsNormEps, into: xn)
        if let mlp = lw.mlp {
            denseMLP(mlp, n: n, into: s.moeOut.pointer)
        } else {
            try moe(layer: l, weights: lw, n: n, prompt: prompt)
        }
        for i in 0..<(n * h) { x[i] += s.moeOut.pointer[i] }
    }

    /// The output head on `rows` hidden states at `hidden`: final norm, then logits into `dest`
    /// (`[rows, vocab]`).
    func head(_ hidden: UnsafePointer<Float>, rows: Int, into dest: UnsafeMutablePointer<Float>) {
        let w = model.weights
        let xn = scratch.xn.pointer
        Ops.rmsNorm(hidden, weight: w.finalNorm, dim: config.hiddenSize, count: rows, eps: config.rmsNormEps, into: xn)
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
