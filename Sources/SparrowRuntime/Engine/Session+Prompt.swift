extension Session {
    /// Batches a layer-major prompt span holds at most (under a budget).
    static let promptSpanBatches = 8

    /// Most tokens `prompt` runs layer by layer (0: the session runs every batch through all layers).
    var promptSpan: Int { scratch.promptRows.count / config.hiddenSize }

    /// A budgeted session's prompt longer than a batch (at most `promptSpan` tokens), layer by layer:
    /// every batch of it goes through layer `l` before any goes through `l + 1`, so a layer's experts
    /// are read once for the whole span while the cache holds them across its batches, instead of
    /// once per batch (a budget's batch is small when experts are wide). The results are the
    /// batch-by-batch run's exactly: the batches are the same, and each depends only on its own rows
    /// and, at each layer, on the keys and values of earlier positions, which are all written by then.
    /// Writes the logits of every row (`allRows`) or of the last into `dest`.
    func prompt(_ tokens: UnsafeBufferPointer<Int>, logitsInto dest: UnsafeMutablePointer<Float>?, allRows: Bool)
        throws(SparrowError)
    {
        let h = config.hiddenSize
        let total = tokens.count
        let hidden = scratch.promptRows.pointer
        let x = scratch.x.pointer
        let batches = stride(from: 0, to: total, by: batchSize).map { $0..<min(total, $0 + batchSize) }
        let base = position
        do throws(SparrowError) {
            try embed(tokens, into: hidden)
            for l in 0..<config.layerCount {
                for batch in batches {
                    position = base + batch.lowerBound
                    x.update(from: hidden + batch.lowerBound * h, count: batch.count * h)
                    try layer(l, n: batch.count, prompt: true)
                    (hidden + batch.lowerBound * h).update(from: x, count: batch.count * h)
                }
            }
        } catch {
            position = base
            throw error
        }
        position = base + total
        guard let dest else { return }
        if !allRows {
            head(hidden + (total - 1) * h, rows: 1, into: dest)
            return
        }
        for batch in batches {
            head(hidden + batch.lowerBound * h, rows: batch.count, into: dest + batch.lowerBound * config.vocabSize)
        }
    }
}
