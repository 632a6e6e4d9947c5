/// What the scheduler asks of the expert cache: which records are (being) cached, what a read
/// would cost, and the reads no use waits for. `ExpertCache` is the real one; tests give the
/// scheduler a fake to check its decisions without I/O.
package protocol ExpertResidency: AnyObject {
    var slotCount: Int { get }
    var slotSize: Int { get }
    /// Bytes of prefetch reads queued or in flight.
    var prefetchBytesInFlight: Int { get }
    /// Seconds per byte the reads have taken (an estimate until measured).
    var laneSecondsPerByte: Double { get }
    /// The highest level of `key` cached or being read, -1 when none.
    func cachedLevel(_ key: ExpertKey) -> Int
    /// Bytes a read of `key` through `level` would take now (0: cached or being read).
    func missBytes(_ key: ExpertKey, level: Int) -> Int
    /// Reads `key` through `level` ahead of use, protected for `steps` layers; returns the bytes
    /// it will read (0: cached already, or no room given up for it).
    @discardableResult
    func prefetch(_ key: ExpertKey, level: Int, steps: Int, background: Bool) -> Int
    /// Starts the reads queued.
    func submit()
    /// Queues up to `limit` background reads completing records cached below the full level.
    @discardableResult
    func upgradeInBackground(limit: Int) -> Int
}

extension ExpertCache: ExpertResidency {}
