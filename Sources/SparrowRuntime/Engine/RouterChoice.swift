import SparrowKernels

/// How one token's router logits become its k experts and their weights, as the model's family
/// routes: softmax then top k (optionally renormalised), top k then softmax (gpt-oss), or sigmoid
/// scores chosen with a correction bias (DeepSeek-V3); optionally only within the best expert
/// groups (DeepSeek); weights times a scaling factor. Allocation-free: the caller's scratch.
struct RouterChoice {
    let scoring: RouterScoring
    let experts: Int
    let k: Int
    let normalize: Bool
    let groups: RouterGroups?
    let scaling: Float

    init(config c: ModelConfig) {
        scoring = c.routerScoring ?? .softmaxThenTopK
        experts = c.expertCount
        k = c.expertsPerToken
        normalize = c.normalizeTopK && scoring != .topKThenSoftmax
        groups = c.routerGroups
        scaling = c.routedScalingFactor ?? 1
    }

    /// Chooses from `row` (the logits, `experts` values, overwritten with the scores) into `ids` and
    /// `weights` (k each, by weight, largest first). `choice` is scratch of `experts` floats and
    /// `groupScores` of the group count; `correction` the selection-only bias.
    func choose(
        _ row: UnsafeMutablePointer<Float>, correction: UnsafePointer<Float>?, choice: UnsafeMutablePointer<Float>,
        groupScores: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>,
        weights: UnsafeMutablePointer<Float>
    ) {
        switch scoring {
        case .topKThenSoftmax:
            Ops.topK(row, count: experts, k: k, ids: ids, values: weights)
            Ops.softmax(weights, k)
            return
        case .softmaxThenTopK: Ops.softmax(row, experts)
        case .sigmoid: for e in 0..<experts { row[e] = Ops.sigmoid(row[e]) }
        }
        choice.update(from: row, count: experts)
        if let b = correction { for e in 0..<experts { choice[e] += b[e] } }
        if let g = groups { keepBestGroups(choice, g, groupScores) }
        Ops.topK(choice, count: experts, k: k, ids: ids, values: weights)
        for j in 0..<k { weights[j] = row[Int(ids[j])] }  // the score, without the correction
        if correction != nil { sortByWeight(ids, weights) }
        if normalize {
            var sum: Float = 0
            for j in 0..<k { sum += weights[j] }
            if scoring == .sigmoid { sum += 1e-20 }
            for j in 0..<k { weights[j] /= sum }
        }
        if scaling != 1 { for j in 0..<k { weights[j] *= scaling } }
    }

    /// Masks every expert outside the best `g.chosen` groups: a group scores its best expert
    /// (softmax) or the sum of its best two (sigmoid); masked experts get 0 (softmax) or −∞.
    private func keepBestGroups(
        _ choice: UnsafeMutablePointer<Float>, _ g: RouterGroups, _ scores: UnsafeMutablePointer<Float>
    ) {
        let size = experts / g.count
        for group in 0..<g.count {
            var first = -Float.infinity
            var second = -Float.infinity
            for e in (group * size)..<((group + 1) * size) {
                let v = choice[e]
                if v > first {
                    second = first
                    first = v
                } else if v > second {
                    second = v
                }
            }
            scores[group] = scoring == .sigmoid ? first + second : first
        }
        let masked: Float = scoring == .sigmoid ? -.infinity : 0
        for _ in 0..<(g.count - g.chosen) {
            var worst = 0
            for group in 1..<g.count where scores[group] < scores[worst] { worst = group }
            scores[worst] = .infinity
            for e in (worst * size)..<((worst + 1) * size) { choice[e] = masked }
        }
    }

    /// Orders the k chosen by weight, largest first (the correction bias can rank them otherwise).
    private func sortByWeight(_ ids: UnsafeMutablePointer<Int32>, _ weights: UnsafeMutablePointer<Float>) {
        for j in 1..<max(k, 1) {
            var i = j
            while i > 0 && weights[i] > weights[i - 1] {
                (weights[i], weights[i - 1]) = (weights[i - 1], weights[i])
                (ids[i], ids[i - 1]) = (ids[i - 1], ids[i])
                i -= 1
            }
        }
    }
}
