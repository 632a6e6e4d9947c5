/// What the scheduler did: precision choices and how well it predicted the next layers' experts.
public struct SchedulerStatistics: Codable, Sendable, Equatable {
    /// Expert uses run below the session's level, and uses skipped.
    public var downgraded = 0
    /// Expert uses skipped (token-level precision with skipping allowed).
    public var skipped = 0
    /// Per prediction depth (index 0: the next layer): experts predicted, how many the layer then
    /// chose, and how many it chose in all. precision = correct / predicted, recall = correct / chosen.
    public var predicted: [Int] = []
    /// Per depth: predicted experts the layer then chose.
    public var correct: [Int] = []
    /// Per depth: experts the layers chose in all.
    public var chosen: [Int] = []
    /// The intra-layer plan: MoE steps planned, the finish time it predicted for them in all,
    /// and the time they took (both in seconds, from the first read queued to the last expert done).
    public var plannedLayers = 0
    /// The finish time the intra-layer plan predicted for its steps, summed.
    public var plannedSeconds = 0.0
    /// The time those steps took, summed.
    public var measuredSeconds = 0.0

    /// All counters at zero.
    public init() {}

    /// Per depth: the share of predictions the layer then chose.
    public var precision: [Double] { zip(correct, predicted).map { $1 > 0 ? Double($0) / Double($1) : 0 } }
    /// Per depth: the share of chosen experts that were predicted.
    public var recall: [Double] { zip(correct, chosen).map { $1 > 0 ? Double($0) / Double($1) : 0 } }
}
