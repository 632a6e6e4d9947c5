/// What the scheduler did: precision choices and how well it predicted the next layers' experts.
public struct SchedulerStatistics: Codable, Sendable, Equatable {
    /// Expert uses run below the session's level, and uses skipped.
    public var downgraded = 0
    public var skipped = 0
    /// Per prediction depth (index 0: the next layer): experts predicted, how many the layer then
    /// chose, and how many it chose in all. precision = correct / predicted, recall = correct / chosen.
    public var predicted: [Int] = []
    public var correct: [Int] = []
    public var chosen: [Int] = []
    /// The intra-layer plan: MoE steps planned, the finish time it predicted for them in all,
    /// and the time they took (both in seconds, from the first read queued to the last expert done).
    public var plannedLayers = 0
    public var plannedSeconds = 0.0
    public var measuredSeconds = 0.0

    public init() {}

    public var precision: [Double] { zip(correct, predicted).map { $1 > 0 ? Double($0) / Double($1) : 0 } }
    public var recall: [Double] { zip(correct, chosen).map { $1 > 0 ? Double($0) / Double($1) : 0 } }
}
