extension ModelConfig {
    /// What makes this configuration impossible to run (a damaged or hostile file's meta), or nil:
    /// every count the forward pass divides by or indexes with is checked; shapes are checked
    /// against the tensors when the weights are resolved.
    package var inconsistency: String? {
        if moeLayers.count != layerCount { return "moe layer flags for \(moeLayers.count) of \(layerCount) layers" }
        if headCount <= 0 || kvHeadCount <= 0 || headCount % kvHeadCount != 0 || headDim <= 0 || headDim % 2 != 0 {
            return "attention heads \(headCount) / \(kvHeadCount) of \(headDim) values"
        }
        if expertCount > 0 && !(1...expertCount).contains(expertsPerToken) {
            return "\(expertsPerToken) experts per token of \(expertCount)"
        }
        if let w = slidingWindow, w <= 0 { return "sliding window \(w)" }
        if let s = slidingLayers, s.count != layerCount { return "sliding-window flags for \(s.count) layers" }
        if let g = routerGroups, g.count <= 0 || expertCount % g.count != 0 || !(1...g.count).contains(g.chosen) {
            return "router groups \(g.chosen) of \(g.count) for \(expertCount) experts"
        }
        if let y = ropeScaling,
            !(y.factor > 0 && y.originalMaxPositions > 0 && y.betaFast > 0 && y.betaSlow > 0
                && y.attentionFactor.isFinite)
        {
            return "YaRN parameters \(y)"
        }
        if let m = latentAttention {
            let positive = m.queryRank >= 0 && m.kvRank > 0 && m.nopeDim > 0 && m.valueDim > 0 && m.ropeDim > 0
            if !positive || m.ropeDim % 2 != 0 || headDim != m.nopeDim + m.ropeDim || kvHeadCount != headCount {
                return "latent attention \(m) with \(headCount) heads of \(headDim)"
            }
        }
        return nil
    }
}
