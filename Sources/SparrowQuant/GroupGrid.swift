import CSparrowKernels

/// The 8-bit grid of one group of weights: `ŵ = m + d · q`, q in 0…255, m and d stored as f16
/// (docs/QUANT.md). Every level is a truncation of q, so the grid decides every level's error.
struct GroupGrid {
    /// Min and step, f16-exact (the values the kernels will read), and their f16 bit patterns.
    var m: Float
    var d: Float
    var mBits: UInt16
    var dBits: UInt16

    init(m: Float, d: Float) {
        let mh = Float16(m)
        let dh = Float16(d)
        self.m = Float(mh)
        self.d = Float(dh)
        mBits = mh.bitPattern
        dBits = dh.bitPattern
    }

    /// Steps of the range the candidates take (the range over 180 … 255 codes) and where their
    /// slack goes (below the min … above the max).
    static let candidateCodes: [Float] = (0..<8).map { 180 + 75 * Float($0) / 7 }
    static let candidateShifts: [Float] = [0, 0.25, 0.5, 0.75, 1]

    /// How much less error the searched grid must give a group that is not an MXFP4 block before it
    /// replaces the min/max grid (docs/QUANT.md: of 0, 0.05, 0.1, 0.2, 0.25 and never, 0.1 measured
    /// best on the trained demo, and better than never on trained DeepSeek-V2/V3 and gpt-oss).
    static let searchGain: Float = 0.1

    /// The grid for `count` weights (a multiple of 16) whose min and max are `lo` and `hi`: among
    /// grids that clip none of them (the 8-bit error stays within half a step), the one with the
    /// least squared error at 4 bits plus a quarter of it at 2 bits, the levels that run under
    /// tight budgets. Weights that are one MXFP4 block (E2M1 points times a power of two: gpt-oss's
    /// experts) always take it (the min/max grid has no point on zero there); other weights keep
    /// the grid whose 4-bit points fall on min and max (d = range/240, m = min − 7.5 d) unless the
    /// search cuts that error by `searchGain` — a group whose outliers waste the min/max grid's
    /// points. (Taking the search's grid whatever its gain made the trained demo worse at every
    /// level: docs/QUANT.md.) The choice depends on the weights only, never on the level list, so
    /// a level of a nested record still decodes exactly as the same level quantized alone.
    static func choose(_ w: UnsafePointer<Float>, count: Int, lo: Float, hi: Float) -> GroupGrid {
        let range = hi - lo
        let minMax = GroupGrid(m: lo - 7.5 * (range / 240), d: range / 240)
        guard range > 0, range.isFinite, minMax.d > 0 else { return minMax }
        let minMaxError = error(of: minMax, w, count: count)
        var best = minMax
        var bestError = minMaxError
        for codes in candidateCodes {
            let d = Float(Float16(range / codes))
            let slack = 255 * d - range
            guard d > 0, slack >= 0 else { continue }
            for shift in candidateShifts {
                let grid = GroupGrid(m: lo - shift * slack, d: d)
                guard grid.m <= lo, grid.m + 255 * grid.d >= hi else { continue }
                let e = error(of: grid, w, count: count)
                if e < bestError {
                    best = grid
                    bestError = e
                }
            }
        }
        if bestError < (1 - searchGain) * minMaxError || isMXFP4Block(w, count: count, lo: lo, hi: hi) {
            return best
        }
        return minMax
    }

    /// Whether every weight is an E2M1 value (±{0, 0.5, 1, 1.5, 2, 3, 4, 6}) times one power of
    /// two, the one an MXFP4 block of their largest magnitude has (2^(exponent − 2)).
    static func isMXFP4Block(_ w: UnsafePointer<Float>, count: Int, lo: Float, hi: Float) -> Bool {
        let largest = max(-lo, hi)
        guard largest > 0, largest.isFinite else { return false }
        let scale = Float(sign: .plus, exponent: largest.exponent - 2, significand: 1)
        for i in 0..<count {
            switch abs(w[i]) / scale {
            case 0, 0.5, 1, 1.5, 2, 3, 4, 6: continue
            default: return false
            }
        }
        return true
    }

    /// Σ (ŵ₄ − w)² + ¼ Σ (ŵ₂ − w)² over the group, codes rounded as the quantizer rounds them
    /// (`spk_grid_error`, vectorised C).
    static func error(of grid: GroupGrid, _ w: UnsafePointer<Float>, count: Int) -> Float {
        spk_grid_error(w, count, grid.m, grid.d)
    }
}
