import Foundation

/// Splits normalised text into the pieces BPE runs on, as the `pre_tokenizer` of tokenizer.json says:
/// `Split` with a regex (behaviour `Isolated` or `Removed`) and/or `ByteLevel` (optionally with
/// GPT-2's own regex and a prefix space).
struct PreTokenizer {
    private var splits: [(NSRegularExpression, removeMatches: Bool)] = []
    /// swift-corelibs-foundation's NSRegularExpression is not safe to match from several threads
    /// at once (ThreadSanitizer caught two threads writing one ICU text clone): one match at a time.
    private let matching = NSLock()
    private var addPrefixSpace = false

    /// GPT-2's pre-tokenization pattern, used by ByteLevel with `use_regex: true`.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    init(json: Any?) throws(SparrowError) {
        guard let json = json as? [String: Any] else { return }  // null: the whole text is one piece
        try add(json)
    }

    private mutating func add(_ j: [String: Any]) throws(SparrowError) {
        switch j["type"] as? String {
        case "Sequence":
            for p in (j["pretokenizers"] as? [[String: Any]]) ?? [] { try add(p) }
        case "Split":
            let pattern: String
            if let p = j["pattern"] as? [String: Any], let r = p["Regex"] as? String {
                pattern = r
            } else if let p = j["pattern"] as? [String: Any], let s = p["String"] as? String {
                pattern = NSRegularExpression.escapedPattern(for: s)
            } else {
                throw .tokenizer("Split pre-tokenizer without a pattern")
            }
            let behavior = j["behavior"] as? String ?? "Isolated"
            guard behavior == "Isolated" || behavior == "Removed", (j["invert"] as? Bool) != true else {
                throw .tokenizer("Split behaviour '\(behavior)' is not supported")
            }
            splits.append((try Self.compile(pattern), behavior == "Removed"))
        case "ByteLevel":
            addPrefixSpace = j["add_prefix_space"] as? Bool ?? false
            if j["use_regex"] as? Bool ?? true { splits.append((try Self.compile(Self.gpt2Pattern), false)) }
        case let t:
            throw .tokenizer("pre-tokenizer '\(t ?? "?")' is not supported")
        }
    }

    /// Compiles an Oniguruma-flavoured pattern (what `tokenizers` uses) with ICU, widening `\s`/`\S`
    /// to Unicode White_Space (ICU's `\s` lacks U+000B and U+0085, Oniguruma's has them).
    static func compile(_ pattern: String) throws(SparrowError) -> NSRegularExpression {
        var out = ""
        var inClass = false
        var it = pattern.makeIterator()
        while let c = it.next() {
            if c == "\\", let n = it.next() {
                switch (n, inClass) {
                case ("s", true): out += #"\s\x{0B}\x{85}"#
                case ("s", false): out += #"[\s\x{0B}\x{85}]"#
                case ("S", false): out += #"[^\s\x{0B}\x{85}]"#
                default: out += "\\" + String(n)
                }
                continue
            }
            if c == "[" { inClass = true } else if c == "]" { inClass = false }
            out.append(c)
        }
        do { return try NSRegularExpression(pattern: out) } catch {
            throw .tokenizer("cannot compile pre-tokenizer regex \(pattern): \(error)")
        }
    }

    /// The pieces of `text`, in order.
    func split(_ text: String) -> [Substring] {
        var text = text
        if addPrefixSpace && !text.hasPrefix(" ") { text = " " + text }
        var pieces: [Substring] = [text[...]]
        for (re, remove) in splits {
            var next: [Substring] = []
            for piece in pieces {
                let s = String(piece)
                let ns = s as NSString
                var last = 0
                let matches = matching.withLock { re.matches(in: s, range: NSRange(location: 0, length: ns.length)) }
                for m in matches where m.range.length > 0 {
                    if m.range.location > last {
                        next.append(
                            Substring(ns.substring(with: NSRange(location: last, length: m.range.location - last))))
                    }
                    if !remove { next.append(Substring(ns.substring(with: m.range))) }
                    last = m.range.location + m.range.length
                }
                if last < ns.length { next.append(Substring(ns.substring(from: last))) }
            }
            pieces = next
        }
        return pieces
    }
}
