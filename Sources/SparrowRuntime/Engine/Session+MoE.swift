import SparrowKernels

extension Session {
    /// The sparse MoE block for `n` rows of `scratch.xn`: route, run each selected expert on the
    /// tokens that chose it, combine with the routing weights (plus the shared expert where the
    /// architecture has one) into `scratch.moeOut`.
    func moe(layer l: Int, weights lw: LayerWeights, n: Int) throws(SparrowError) {
        let c = config
        let s = scratch
        let h = c.hiddenSize
        let e = c.expertCount
        let topK = c.expertsPerToken
        let inter = c.expertIntermediateSize
        let logits = s.router.pointer
        Ops.matmul(lw.router!, s.xn.pointer, n: n, into: logits, threads: threads)

        // Route: softmax over experts, top-k by probability, optional renormalisation.
        let counts = s.expertStart
        counts.initialize(repeating: 0, count: e + 2)
        for i in 0..<n {
            let row = logits + i * e
            Ops.softmax(row, e)
            let ids = s.topIds + i * topK
            let ws = s.topWeights + i * topK
            selectTopK(row, count: e, k: topK, ids: ids, weights: ws)
            if c.normalizeTopK {
                var sum: Float = 0
                for j in 0..<topK { sum += ws[j] }
                for j in 0..<topK { ws[j] /= sum }
            }
            for j in 0..<topK { counts[Int(ids[j]) + 2] += 1 }
            if let observe = routingObserver {
                observe(l, position + i, (0..<topK).map { Int(ids[$0]) }, (0..<topK).map { ws[$0] })
            }
        }
        // Group (token, rank) pairs by expert: expertStart[x] is the first slot of expert x.
        for x in 0..<e { counts[x + 2] += counts[x + 1] }
        let starts = counts + 1
        for i in 0..<n {
            for j in 0..<topK {
                let x = Int(s.topIds[i * topK + j])
                let slot = Int(starts[x])
                starts[x] += 1
                s.slotToken[slot] = Int32(i)
                s.slotWeight[slot] = s.topWeights[i * topK + j]
                s.tokenSlot[i * topK + j] = Int32(slot)
                (s.slotIn.pointer + slot * h).update(from: s.xn.pointer + i * h, count: h)
            }
        }
        // `counts[x]` is now the start of expert x, `counts[x + 1]` its end.
        let active = s.activeExperts
        let experts = s.activeWeights
        var activeCount = 0
        for x in 0..<e where counts[x + 1] > counts[x] {
            active[activeCount] = Int32(x)
            (experts + activeCount).initialize(to: try model.experts.weights(layer: l, expert: x, level: expertLevel))
            activeCount += 1
        }

        // Experts in parallel when there are enough of them, else each expert's matmuls in parallel.
        let inner = activeCount >= threads ? 1 : threads
        let run: (Int) -> Void = { a in
            let x = Int(active[a])
            let m = experts[a]
            let first = Int(counts[x])
            let rows = Int(counts[x + 1]) - first
            let gate = s.slotGate.pointer + first * inter
            let up = s.slotUp.pointer + first * inter
            let xin = s.slotIn.pointer + first * h
            Ops.matmul(m.gate, xin, n: rows, into: gate, threads: inner, act: s.actIn, actRow: first)
            Ops.matmul(m.up, xin, n: rows, into: up, threads: inner, act: s.actIn, actRow: first)
            Ops.swiglu(gate, up, rows * inter)
            Ops.matmul(
                m.down, gate, n: rows, into: s.slotOut.pointer + first * h, threads: inner, act: s.actMid, actRow: first)
        }
        if inner == 1 { Parallel.forEach(activeCount, run) } else { for a in 0..<activeCount { run(a) } }

        // Combine in rank order per token (deterministic whatever the thread schedule).
        let out = s.moeOut.pointer
        out.initialize(repeating: 0, count: n * h)
        for i in 0..<n {
            for j in 0..<topK {
                let slot = Int(s.tokenSlot[i * topK + j])
                Ops.axpy(h, s.slotWeight[slot], s.slotOut.pointer + slot * h, out + i * h)
            }
        }
        if let shared = lw.shared, let sg = lw.sharedGate {
            denseMLP(shared, n: n, into: s.proj.pointer)
            Ops.matmul(sg, s.xn.pointer, n: n, into: s.gateScalar.pointer, threads: 1)
            for i in 0..<n {
                Ops.axpy(h, Ops.sigmoid(s.gateScalar.pointer[i]), s.proj.pointer + i * h, out + i * h)
            }
        }
    }

    /// Indices and values of the k largest of `count` values, in descending order (ties: lower index first).
    private func selectTopK(
        _ v: UnsafePointer<Float>, count: Int, k: Int, ids: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>
    ) {
        for j in 0..<k {
            ids[j] = -1
            weights[j] = -.infinity
        }
        for x in 0..<count {
            let val = v[x]
            if val <= weights[k - 1] && ids[k - 1] >= 0 { continue }
            var j = k - 1
            while j > 0 && (val > weights[j - 1] || ids[j - 1] < 0) {
                ids[j] = ids[j - 1]
                weights[j] = weights[j - 1]
                j -= 1
            }
            ids[j] = Int32(x)
            weights[j] = val
        }
    }
}
