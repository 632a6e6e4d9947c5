import Foundation
import SparrowFormat
import SparrowIO

/// What calibration text showed about a model's experts (`sparrow profile`): how often each is
/// chosen, with what gate weights, after which experts of the previous layer, and how much each
/// stored precision level changes its output. Stored beside the model as `MODEL.spw.profile.json`.
public struct ExpertProfile: Codable, Sendable, Equatable {
    /// What calibration showed about one expert.
    public struct Expert: Codable, Sendable, Equatable {
        /// Share of the layer's token selections that chose this expert (sums to top-k per layer).
        public var frequency: Double
        /// Gate weight (renormalised) when chosen: 10th, 50th and 90th percentiles.
        public var gateQuantiles: [Float]
        /// Per stored level (lowest first): relative error of the expert's output against the
        /// highest level, ‖y_level − y_top‖ / ‖y_top‖, on calibration inputs routed to it.
        public var levelError: [Float]
    }

    /// The size of the model file it describes (guards against a profile left from another file).
    public var modelBytes: Int
    /// Tokens of calibration text the profile was measured on.
    public var calibrationTokens: Int
    /// The stored expert levels (bits) the errors refer to.
    public var expertBits: [Int]
    /// [layer][expert]; layers without experts are empty.
    public var experts: [[Expert]]
    /// [layer][previous-layer expert][expert]: how often the pair was chosen by the same token.
    public var coActivation: [[[Int]]]
    /// Share of expert uses whose unimportance (the gate weight ranked above them) is ≤ 0, 0.05,
    /// 0.10, …, 1.0 (21 points).
    public var unimportanceCDF: [Double]
    /// Share of the gate weight (renormalised per token) carried by expert uses whose
    /// unimportance is ≤ 0, 0.05, …, 1.0 (21 points); nil in profiles written before it existed.
    public var gateMassCDF: [Double]?
    /// CRC-32C of the profile's JSON without this field (sorted keys), set by `save`: a damaged
    /// file is refused instead of steering precision with wrong numbers. nil in older profiles.
    var checksum: UInt32?

    /// Where the profile of `modelPath` lives.
    public static func path(for modelPath: String) -> String { modelPath + ".profile.json" }

    /// Writes the profile atomically: a temporary file in the same directory, flushed, then
    /// renamed over the old one — a crash mid-write leaves the old profile (or none) intact.
    public func save(to path: String) throws(SparrowError) {
        var sealed = self
        sealed.checksum = crc32c(Array(try Self.unsealedJSON(self)))
        let data: Data
        do { data = try Self.encoder.encode(sealed) } catch {
            throw .invalidArgument("cannot encode the profile: \(error)")
        }
        let temporary = path + ".tmp-\(getpid())"
        let fd = TemporaryFiles.create(temporary)
        guard fd >= 0 else { throw .io(IOError(path: temporary, operation: "create", errno: errno)) }
        defer { TemporaryFiles.unregister(temporary) }
        let written = data.withUnsafeBytes { b in RegularFile.writeAll(fd, b) }
        let e = errno
        if written { fsync(fd) }
        close(fd)
        guard written else {
            unlink(temporary)
            throw .io(IOError(path: temporary, operation: "write", errno: e))
        }
        if rename(temporary, path) != 0 {
            let e = errno
            unlink(temporary)
            throw .io(IOError(path: path, operation: "rename", errno: e))
        }
    }

    /// Reads a profile; nil when there is none, an error when it is damaged.
    public static func load(from path: String) throws(SparrowError) -> ExpertProfile? {
        try load(from: path, reading: RegularFile.contents(atPath:))
    }

    /// The same, reading the file's bytes with `read` (nil: the read failed, `errno` says why) —
    /// the seam through which tests inject failed, short and damaged reads.
    package static func load(from path: String, reading read: (String) -> Data?) throws(SparrowError)
        -> ExpertProfile?
    {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = read(path) else {
            throw .io(IOError(path: path, operation: "read", errno: errno))
        }
        let profile: ExpertProfile
        do { profile = try JSONDecoder().decode(ExpertProfile.self, from: data) } catch {
            throw .config(path: path, problem: "not a valid expert profile (\(error)); run `sparrow profile` again")
        }
        if let sum = profile.checksum, crc32c(Array(try unsealedJSON(profile))) != sum {
            throw .config(path: path, problem: "checksum mismatch: the profile is damaged; run `sparrow profile` again")
        }
        var verified = profile
        verified.checksum = nil  // (a profile in memory carries none: save seals it)
        return verified
    }

    /// The encoder of profile files: sorted keys, so the same profile always gives the same bytes.
    private static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }

    /// The JSON of `profile` without its checksum: what the checksum covers.
    private static func unsealedJSON(_ profile: ExpertProfile) throws(SparrowError) -> Data {
        var p = profile
        p.checksum = nil
        do { return try encoder.encode(p) } catch { throw .invalidArgument("cannot encode the profile: \(error)") }
    }

    /// The share of expert uses token-level precision would read at the low level on a miss
    /// (unimportance above `fullThreshold`), from the calibration's distribution.
    @_spi(Internals) public func lowUseShare(fullThreshold: Float) -> Double {
        let i = min(Self.gridPoint(atOrBelow: Double(fullThreshold)), unimportanceCDF.count - 1)
        return 1 - unimportanceCDF[i]
    }

    /// The grid the unimportance distributions are kept on: 0, 0.05, …, 1 (`gridPoints` values).
    package static let gridStep = 0.05
    package static let gridPoints = 21

    /// The grid point a use of unimportance `u` is counted at (the first at or above it).
    static func gridPoint(atOrAbove u: Double) -> Int { min(gridPoints - 1, Int((u / gridStep).rounded(.up))) }

    /// The last grid point at or below threshold `t`.
    static func gridPoint(atOrBelow t: Double) -> Int {
        min(max(Int((t / gridStep + 1e-9).rounded(.down)), 0), gridPoints - 1)
    }

    /// Token-level precision thresholds derived from the calibration (`--token-precision auto`):
    /// the smallest T1 on the 0.05 grid at which reading the uses above it at `lowLevel` changes a
    /// MoE output by at most `tolerance` (relative; estimated as the gate weight above T1 × the
    /// frequency-weighted mean output error of that level), and the smallest T2 ≥ T1 at which
    /// dropping the uses above it (`allowSkip`) would change it by at most as much (the gate
    /// weight above T2). nil when the profile predates the gate-weight distribution.
    @_spi(Internals) public func thresholds(lowLevel: Int, tolerance: Double) -> (full: Float, low: Float)? {
        guard let mass = gateMassCDF, mass.count == Self.gridPoints else { return nil }
        var weighted = 0.0
        var total = 0.0
        for layer in experts {
            for x in layer where lowLevel < x.levelError.count {
                weighted += x.frequency * Double(x.levelError[lowLevel])
                total += x.frequency
            }
        }
        let error = total > 0 ? weighted / total : 1
        let last = Self.gridPoints - 1
        let full = mass.indices.first { (1 - mass[$0]) * error <= tolerance } ?? last
        let low = mass.indices.first { $0 >= full && 1 - mass[$0] <= tolerance } ?? last
        return (Float(full) * Float(Self.gridStep), Float(low) * Float(Self.gridStep))
    }

    /// Per layer, the `share` of experts whose output `level` changes most: the ones token-level
    /// precision should never downgrade.
    package func mostSensitive(level: Int, share: Double) -> Set<ExpertKey> {
        var keys = Set<ExpertKey>()
        for (l, layer) in experts.enumerated() where !layer.isEmpty {
            let order = layer.indices.sorted { layer[$0].levelError[level] > layer[$1].levelError[level] }
            for x in order.prefix(Int((Double(layer.count) * min(share, 1)).rounded())) {
                keys.insert(ExpertKey(layer: l, expert: x))
            }
        }
        return keys
    }

    /// The arena share for low-precision slots that matches demand: low uses × low size over all
    /// uses × their sizes (`lowFraction` = low record size ÷ full record size).
    package func lowSlotShare(fullThreshold: Float, lowFraction: Double) -> Double {
        let low = lowUseShare(fullThreshold: fullThreshold) * lowFraction
        let full = 1 - lowUseShare(fullThreshold: fullThreshold)
        return low + full > 0 ? low / (low + full) : 0
    }
}
