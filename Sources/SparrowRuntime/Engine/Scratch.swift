import SparrowKernels

/// Working memory of a session, sized once for the largest batch: nothing is allocated per token.
final class Scratch: @unchecked Sendable {
    let x, xn, q, k, v, attn, proj, moeOut: FloatBuffer
    /// The hidden states of a prompt run layer by layer (`Session+Prompt`): `[span, H]`, empty
    /// when the session does not do that.
    let promptRows: FloatBuffer
    let router: FloatBuffer
    /// One token's selection scores (router scores plus any correction bias) and its expert groups'.
    let routerChoice, groupScores: FloatBuffer
    /// Attention probabilities, one row of `context` per parallel chunk.
    let scores: FloatBuffer
    let scoreChunks: Int
    /// One head's value row converted to f32, per parallel chunk (f16 KV cache).
    let kvRow: FloatBuffer
    /// MoE slots: one row per (token, selected expert), grouped by expert.
    let slotIn, slotGate, slotUp, slotOut: FloatBuffer
    let slotToken: UnsafeMutablePointer<Int32>
    let slotWeight: UnsafeMutablePointer<Float>
    /// Per token, per rank: which slot holds that expert's output.
    let tokenSlot: UnsafeMutablePointer<Int32>
    let topIds: UnsafeMutablePointer<Int32>
    let topWeights: UnsafeMutablePointer<Float>
    let expertStart: UnsafeMutablePointer<Int32>  // [E + 2]
    /// The experts a MoE step runs and their weights (capacity E), filled per layer.
    let activeExperts: UnsafeMutablePointer<Int32>
    let activeWeights: UnsafeMutablePointer<MLPWeights>
    /// Cache slots of the active experts (budgeted sessions) and the level each runs at.
    let activeSlots: UnsafeMutablePointer<Int32>
    let activeLevels: UnsafeMutablePointer<Int32>
    /// Per expert (capacity E): its smallest unimportance over the tokens that chose it and its
    /// largest gate weight (token-level precision, cache policies).
    let expertUnimportance: UnsafeMutablePointer<Float>
    let expertGate: UnsafeMutablePointer<Float>
    /// Latent attention (DeepSeek): the query bottleneck `[b, queryRank]`, each (token, head)'s
    /// absorbed query `[b, heads, kvRank + rope]`, each head's attention-weighted latent
    /// `[heads, b, kvRank]` and one head's values `[b, valueDim]`.
    let latentQA, latentQuery, latentOut, headOut: FloatBuffer
    /// Dense MLP and shared expert intermediates.
    let mlpGate, mlpUp: FloatBuffer
    let gateScalar: FloatBuffer
    /// Int8 activations for quantized matrices: inputs of dense matrices and expert gate/up
    /// (`actIn`), and of expert down projections (`actMid`), one row per token or slot.
    let actIn, actMid: ActivationBuffer

    /// Bytes of scratch each token of the batch adds (what a batch of `b` costs beyond a fixed
    /// part): activations, the routed slots' intermediates (top-k × the expert width, the largest
    /// part with wide experts) and their int8 copies.
    static func bytesPerBatchToken(config c: ModelConfig) -> Int {
        let h = c.hiddenSize
        let qDim = c.headCount * c.headDim
        let kvDim = c.kvHeadCount * c.headDim
        let i = max(c.expertIntermediateSize, 1)
        let m = max(c.denseIntermediateSize, c.sharedExpertIntermediateSize, 1)
        let perSlot = 4 * (2 * h + 2 * i) + i + h
        let latent = c.latentAttention.map { a in
            a.queryRank + c.headCount * (a.cachedWidth + a.kvRank + a.valueDim) + a.valueDim + a.cachedWidth
        }
        return 4 * (4 * h + 2 * qDim + 2 * kvDim + max(c.expertCount, 1) + 2 * m + (latent ?? 0))
            + max(c.expertsPerToken, 1) * perSlot
    }

    init(config c: ModelConfig, batch b: Int, context: Int, threads: Int, promptSpan: Int = 0) {
        let h = c.hiddenSize
        promptRows = FloatBuffer(count: promptSpan * h)
        let qDim = c.headCount * c.headDim
        let mla = c.latentAttention
        let kvDim = max(c.kvHeadCount * c.headDim, mla?.cachedWidth ?? 0)
        let attnDim = max(qDim, c.headCount * (mla?.valueDim ?? 0))
        x = FloatBuffer(count: b * h)
        xn = FloatBuffer(count: b * h)
        q = FloatBuffer(count: b * qDim)
        k = FloatBuffer(count: b * kvDim)
        v = FloatBuffer(count: b * kvDim)
        attn = FloatBuffer(count: b * attnDim)
        latentQA = FloatBuffer(count: b * (mla?.queryRank ?? 0))
        latentQuery = FloatBuffer(count: b * c.headCount * (mla?.cachedWidth ?? 0))
        latentOut = FloatBuffer(count: b * c.headCount * (mla?.kvRank ?? 0))
        headOut = FloatBuffer(count: b * (mla?.valueDim ?? 0))
        proj = FloatBuffer(count: b * h)
        moeOut = FloatBuffer(count: b * h)
        router = FloatBuffer(count: b * max(c.expertCount, 1))
        routerChoice = FloatBuffer(count: max(c.expertCount, 1))
        groupScores = FloatBuffer(count: max(c.routerGroups?.count ?? 1, 1))
        scoreChunks = max(1, threads * 2)
        scores = FloatBuffer(count: scoreChunks * context)
        kvRow = FloatBuffer(count: scoreChunks * max(c.headDim, mla?.kvRank ?? 0))
        let slots = b * max(c.expertsPerToken, 1)
        let i = max(c.expertIntermediateSize, 1)
        slotIn = FloatBuffer(count: slots * h)
        slotGate = FloatBuffer(count: slots * i)
        slotUp = FloatBuffer(count: slots * i)
        slotOut = FloatBuffer(count: slots * h)
        slotToken = .allocate(capacity: slots)
        slotWeight = .allocate(capacity: slots)
        tokenSlot = .allocate(capacity: slots)
        topIds = .allocate(capacity: slots)
        topWeights = .allocate(capacity: slots)
        expertStart = .allocate(capacity: c.expertCount + 2)
        activeExperts = .allocate(capacity: max(1, c.expertCount))
        activeWeights = .allocate(capacity: max(1, c.expertCount))
        activeSlots = .allocate(capacity: max(1, c.expertCount))
        activeLevels = .allocate(capacity: max(1, c.expertCount))
        expertUnimportance = .allocate(capacity: max(1, c.expertCount))
        expertGate = .allocate(capacity: max(1, c.expertCount))
        let m = max(c.denseIntermediateSize, c.sharedExpertIntermediateSize, 1)
        mlpGate = FloatBuffer(count: b * m)
        mlpUp = FloatBuffer(count: b * m)
        gateScalar = FloatBuffer(count: b)
        let widest = max(h, attnDim, m, mla?.queryRank ?? 0, mla?.kvRank ?? 0)
        actIn = ActivationBuffer(capacity: max(slots * h, b * widest))
        actMid = ActivationBuffer(capacity: slots * i)
    }

    deinit {
        slotToken.deallocate()
        slotWeight.deallocate()
        tokenSlot.deallocate()
        topIds.deallocate()
        topWeights.deallocate()
        expertStart.deallocate()
        activeExperts.deallocate()
        activeWeights.deallocate()
        activeSlots.deallocate()
        activeLevels.deallocate()
        expertUnimportance.deallocate()
        expertGate.deallocate()
    }
}
