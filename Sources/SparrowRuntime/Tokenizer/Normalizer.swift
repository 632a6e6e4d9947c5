import Foundation

/// The `normalizer` of tokenizer.json: Unicode normal forms and lowercasing, alone or in sequence.
struct Normalizer {
    enum Step { case nfc, nfd, nfkc, nfkd, lowercase }
    private var steps: [Step] = []

    init(json: Any?) throws(SparrowError) {
        guard let json = json as? [String: Any] else { return }
        try add(json)
    }

    private mutating func add(_ j: [String: Any]) throws(SparrowError) {
        switch j["type"] as? String {
        case "Sequence": for n in (j["normalizers"] as? [[String: Any]]) ?? [] { try add(n) }
        case "NFC": steps.append(.nfc)
        case "NFD": steps.append(.nfd)
        case "NFKC": steps.append(.nfkc)
        case "NFKD": steps.append(.nfkd)
        case "Lowercase": steps.append(.lowercase)
        case let t: throw .tokenizer("normalizer '\(t ?? "?")' is not supported")
        }
    }

    func apply(_ s: String) -> String {
        var s = s
        for step in steps {
            switch step {
            case .nfc: s = s.precomposedStringWithCanonicalMapping
            case .nfd: s = s.decomposedStringWithCanonicalMapping
            case .nfkc: s = s.precomposedStringWithCompatibilityMapping
            case .nfkd: s = s.decomposedStringWithCompatibilityMapping
            case .lowercase: s = s.lowercased()
            }
        }
        return s
    }
}
