import Foundation
import SparrowFormat
import SparrowIO
@_spi(Internals) import SparrowRuntime
import Testing

/// `sparrow profile`'s data: sensible statistics from real text, an atomic round trip through the
/// sidecar file, and its use by token-level precision.
@Suite struct ProfileTests {
    static func profile() throws -> ExpertProfile {
        let text = try String(contentsOfFile: Paths.demo + "/eval-text.txt", encoding: .utf8)
        return try Profiler.run(model: try ExpertCacheTests.demo(), text: text, tokens: 2048)
    }

    @Test func statisticsFromCalibrationText() throws {
        let p = try Self.profile()
        let model = try ExpertCacheTests.demo()
        #expect(p.calibrationTokens == 2048 && p.expertBits == [2, 4, 8] && p.modelBytes == model.file.file.count)
        for (l, layer) in p.experts.enumerated() {
            #expect(layer.count == model.config.expertCount)
            #expect(abs(layer.map(\.frequency).reduce(0, +) - Double(model.config.expertsPerToken)) < 1e-9)
            for e in layer where e.frequency > 0 {
                #expect(
                    e.levelError[0] > e.levelError[1] && e.levelError[1] > 0 && e.levelError[2] == 0,
                    "layer \(l): \(e.levelError)")
                #expect(e.gateQuantiles[0] <= e.gateQuantiles[1] && e.gateQuantiles[1] <= e.gateQuantiles[2])
            }
            let pairs = p.coActivation[l].flatMap { $0 }.reduce(0, +)
            #expect(l == 0 ? pairs == 0 : pairs == 2048 * model.config.expertsPerToken * model.config.expertsPerToken)
        }
        #expect(zip(p.unimportanceCDF, p.unimportanceCDF.dropFirst()).allSatisfy { $0 <= $1 })
        // The top expert: 1 use of 4 has unimportance 0.
        #expect(abs(p.unimportanceCDF.last! - 1) < 1e-9 && abs(p.unimportanceCDF[0] - 0.25) < 1e-9)
        #expect(p.lowUseShare(fullThreshold: 0.6) > 0 && p.lowUseShare(fullThreshold: 1) == 0)
        #expect(p.lowSlotShare(fullThreshold: 0.6, lowFraction: 0.3) > 0)
    }

    /// The sidecar is replaced atomically: a write that died before its rename leaves only a
    /// temporary file, and the old profile loads; a damaged profile is a clear error.
    @Test func roundTripAndInterruptedWrite() throws {
        let p = try Self.profile()
        let path = Paths.temporaryDirectory() + "/m.spw.profile.json"
        #expect(try ExpertProfile.load(from: path) == nil)
        try p.save(to: path)
        #expect(try ExpertProfile.load(from: path) == p)
        // A crash mid-write: the temporary file is half written, the rename never happened.
        var other = p
        other.calibrationTokens = 1
        let json = try JSONEncoder().encode(other)
        _ = FileManager.default.createFile(atPath: path + ".tmp-99999", contents: json.prefix(json.count / 2))
        #expect(try ExpertProfile.load(from: path) == p)
        try other.save(to: path)
        #expect(try ExpertProfile.load(from: path)?.calibrationTokens == 1)
        // A damaged profile that is still valid JSON (one number changed) is refused by its checksum.
        let saved = try String(contentsOfFile: path, encoding: .utf8)
        try saved.replacingOccurrences(of: "\"calibrationTokens\":1,", with: "\"calibrationTokens\":7,")
            .write(toFile: path, atomically: false, encoding: .utf8)
        do {
            _ = try ExpertProfile.load(from: path)
            Issue.record("a damaged profile was loaded")
        } catch { #expect("\(error)".contains("checksum mismatch"), "\(error)") }
        try Data("{\"modelBytes\": 3".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: SparrowError.self) { try ExpertProfile.load(from: path) }
    }

    /// Faults injected into the profile's read: a failed read is an I/O error naming the file, a
    /// short read is refused, and a flipped bit is refused (invalid JSON or the checksum) unless it
    /// changed nothing (a last digit of a float that parses to the same value): never other numbers.
    @Test func faultsInTheProfileRead() throws {
        let path = Paths.temporaryDirectory() + "/m.spw.profile.json"
        try Self.profile().save(to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            _ = try ExpertProfile.load(
                from: path,
                reading: { _ in
                    errno = EIO; return nil
                })
            Issue.record("a failed read loaded a profile")
        } catch { #expect("\(error)".contains("m.spw.profile.json: read failed"), "\(error)") }
        #expect(throws: SparrowError.self) {
            try ExpertProfile.load(from: path, reading: { _ in good.prefix(good.count / 2) })
        }
        let original = try #require(try ExpertProfile.load(from: path, reading: { _ in good }))
        var rng = SplitMix64(seed: 15)  // seeded: the same flips every run
        var refused = 0
        for _ in 0..<200 {
            var bad = good
            let i = Int.random(in: 0..<bad.count, using: &rng)
            bad[i] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
            do {
                let loaded = try ExpertProfile.load(from: path, reading: { _ in bad })
                #expect(loaded == original, "a flipped bit at byte \(i) was loaded as other numbers")
            } catch { refused += 1 }
        }
        #expect(refused > 150)
    }

    /// With every expert protected by the profile, token-level precision downgrades nothing; a
    /// profile of another file is ignored.
    @Test func protectedExpertsAreNeverDowngraded() throws {
        let model = try ExpertCacheTests.demo()
        let tokens = try SchedulerTests.tokens(40)
        let p = try Self.profile()
        var o = try SchedulerTests.cached(
            slots: 8, precision: TokenPrecision(fullThreshold: 0.3, lowThreshold: 0.8, protectedShare: 1))
        o.profile = p
        let all = try Session(model: model, options: o)
        _ = try SchedulerTests.run(all, tokens)
        #expect(all.schedulerStatistics.downgraded == 0)
        var stale = p
        stale.modelBytes += 1
        o.profile = stale
        let ignored = try Session(model: model, options: o)
        _ = try SchedulerTests.run(ignored, tokens)
        #expect(ignored.schedulerStatistics.downgraded > 0)
    }

    /// `--token-precision auto`: thresholds from the calibration's gate-weight distribution and
    /// level errors — the smallest T1 whose estimated output change stays within the tolerance,
    /// looser tolerances never raise it; a session given a profile uses them, one without keeps
    /// the thresholds given; a profile written before the distribution existed still loads.
    @Test func thresholdsFromTheProfile() throws {
        let p = try Self.profile()
        let mass = try #require(p.gateMassCDF)
        #expect(mass.count == 21 && abs(mass.last! - 1) < 1e-9 && zip(mass, mass.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(mass[0] > 0.25)  // the top expert carries more than its 1-in-4 share of the weight
        let tight = try #require(p.thresholds(lowLevel: 0, tolerance: 0.01))
        let loose = try #require(p.thresholds(lowLevel: 0, tolerance: 0.1))
        #expect(loose.full <= tight.full && tight.full <= tight.low && loose.full <= loose.low)
        #expect(p.thresholds(lowLevel: 2, tolerance: 0.01)!.full == 0)  // the top level changes nothing
        // The estimate: gate weight above T1 × mean 2-bit error ≤ tolerance, and not at the step below.
        var weighted = 0.0, total = 0.0
        for layer in p.experts {
            for x in layer { weighted += x.frequency * Double(x.levelError[0]); total += x.frequency }
        }
        let i = Int((tight.full / 0.05).rounded())
        #expect((1 - mass[i]) * weighted / total <= 0.01)
        if i > 0 { #expect((1 - mass[i - 1]) * weighted / total > 0.01) }

        let model = try ExpertCacheTests.demo()
        var o = try SchedulerTests.cached(slots: 8, precision: TokenPrecision(profileTolerance: 0.01))
        o.profile = p
        let derived = try Session(model: model, options: o).tokenPrecision!
        #expect(
            derived.fullThreshold == tight.full && derived.lowThreshold == tight.low && derived.profileTolerance == 0.01
        )
        var old = p
        old.gateMassCDF = nil
        o.profile = try JSONDecoder().decode(ExpertProfile.self, from: try JSONEncoder().encode(old))
        let given = try Session(model: model, options: o).tokenPrecision!
        #expect(given.fullThreshold == 0.6 && given.lowThreshold == 0.9 && given.profileTolerance == nil)
    }
}
