/// HOBBIT's token-level precision for budgeted sessions: when an expert a token chose is not cached
/// at the session's level, how unimportant it is for that token decides the level read. A token's
/// experts are sorted by gate weight (renormalised to sum 1); an expert's *unimportance* is the sum
/// of the weights ranked above it (0 for the top expert).
public struct TokenPrecision: Sendable, Equatable, Codable {
    /// Unimportance ≤ this: the session's level (HOBBIT's T1; 0.6 on Mixtral).
    public var fullThreshold: Float
    /// Unimportance ≤ this: the low level; above it also the low level, or skipped with `allowSkip`
    /// (HOBBIT's T2; 0.9 on Mixtral).
    public var lowThreshold: Float
    /// Bits of the low level (a stored level below the session's); nil: the lowest stored level.
    public var lowBits: Int?
    /// Drop expert uses above `lowThreshold` that missed the cache (HOBBIT's third tier): they carry
    /// the least gate weight, and reading them is what a budget at the lowest stored level cannot
    /// otherwise cut. On by default (measured: Benchmarks/RESULTS.md, issue 14).
    public var allowSkip: Bool
    /// With a profile: per layer, this share of the experts whose low level changes their output
    /// most is never downgraded (EdgeMoE's expert-wise bit-width). 0: none.
    public var protectedShare: Double
    /// Read the missing suffix of downgraded records cached in full slots while the I/O lane is
    /// otherwise idle, so that their next use runs at full precision.
    public var upgradeInBackground: Bool
    /// With a profile of the model: replace the thresholds by the ones its calibration gives for
    /// this relative change of a MoE output (`ExpertProfile.thresholds`); without one the
    /// thresholds above stay. nil: use them as given.
    public var profileTolerance: Double?

    /// HOBBIT's thresholds (measured on Mixtral): the defaults of the Swift API, the CLI and the C
    /// library (`sparrow_session_params_default`; a test keeps them equal).
    public static let defaultFullThreshold: Float = 0.6
    /// HOBBIT's T2.
    public static let defaultLowThreshold: Float = 0.9
    /// Whether misses above T2 are skipped unless asked otherwise (the measured best).
    public static let defaultAllowSkip = true

    /// The relative MoE-output change `--token-precision auto` allows.
    public static let defaultTolerance = 0.05

    /// The default of budgeted sessions (`--token-precision auto`): the thresholds the model's
    /// profile gives for `defaultTolerance` when a profile of the file is given, else HOBBIT's,
    /// and misses above T2 skipped. Measured on the widened demo (Benchmarks/RESULTS.md).
    public static let automatic = TokenPrecision(profileTolerance: defaultTolerance)

    /// Calls `body(rank, unimportance, share)` for one token's chosen experts in rank order: the
    /// share of the gate weight (renormalised to sum 1) ranked above the expert, and its own share;
    /// both 0 when the weights sum to 0. The one definition the session and the profiler use.
    @inline(__always)
    static func forEachUnimportance(
        _ weights: UnsafePointer<Float>, count: Int,
        _ body: (_ rank: Int, _ unimportance: Float, _ share: Float) -> Void
    ) {
        var total: Float = 0
        for j in 0..<count { total += weights[j] }
        var above: Float = 0
        for j in 0..<count {
            body(j, total > 0 ? above / total : 0, total > 0 ? weights[j] / total : 0)
            above += weights[j]
        }
    }

    /// Token-level precision with HOBBIT's thresholds unless given; see the properties.
    public init(
        fullThreshold: Float = defaultFullThreshold, lowThreshold: Float = defaultLowThreshold, lowBits: Int? = nil,
        allowSkip: Bool = defaultAllowSkip,
        protectedShare: Double = 0, upgradeInBackground: Bool = true, profileTolerance: Double? = nil
    ) {
        self.profileTolerance = profileTolerance
        self.upgradeInBackground = upgradeInBackground
        self.fullThreshold = fullThreshold
        self.lowThreshold = lowThreshold
        self.lowBits = lowBits
        self.allowSkip = allowSkip
        self.protectedShare = protectedShare
    }

    /// The level a cache miss of an expert use with `unimportance` reads: `full`, `low`, or nil (skip).
    func level(unimportance: Float, full: Int, low: Int) -> Int? {
        if unimportance <= fullThreshold { return full }
        if unimportance <= lowThreshold || !allowSkip { return low }
        return nil
    }
}
