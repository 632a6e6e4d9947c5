/// Mixtral: GQA without bias, optional sliding window, softmax → top-k router always renormalised,
/// SwiGLU experts stored as w1 (gate), w3 (up), w2 (down) under `block_sparse_moe`.
enum Mixtral: ArchitectureSpec {
    static func config(from hf: HFConfig) throws(SparrowError) -> ModelConfig {
        var c = try hf.baseConfig(architecture: .mixtral)
        c.expertCount = try hf.int(anyOf: ["num_local_experts", "num_experts"])
        c.expertsPerToken = try hf.int("num_experts_per_tok")
        c.expertIntermediateSize = try hf.int("intermediate_size")
        c.normalizeTopK = true
        if hf.has("sliding_window") { c.slidingWindow = try hf.positive("sliding_window") }
        try hf.checkExperts(c)
        return c
    }

    static func checkpointNames(for name: TensorName) -> [String] {
        switch name {
        case .router(let l):
            return ["model.layers.\(l).block_sparse_moe.gate.weight", "model.layers.\(l).mlp.gate.weight"]
        default: return LlamaStyleNames.names(name)
        }
    }

    static func expertNames(layer: Int, expert: Int) -> (gate: [String], up: [String], down: [String]) {
        let p = "model.layers.\(layer).block_sparse_moe.experts.\(expert)."
        let hf = LlamaStyleNames.expertNames(layer: layer, expert: expert)
        return ([p + "w1.weight"] + hf.gate, [p + "w3.weight"] + hf.up, [p + "w2.weight"] + hf.down)
    }
}
