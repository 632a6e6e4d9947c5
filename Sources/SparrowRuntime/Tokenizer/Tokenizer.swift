import Foundation
import SparrowSync

/// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2, Qwen, OLMo style).
///
/// Encoding: added tokens are matched in the raw text first, the rest is normalised,
/// pre-tokenised, mapped to the byte alphabet and merged by rank. Gives the same ids as the
/// `tokenizers` library. Immutable and thread-safe except for its internal piece cache, which
/// is guarded.
public final class Tokenizer: @unchecked Sendable {
    /// Number of ids (vocabulary plus added tokens).
    public let count: Int
    /// Whether encode prepends the BOS token.
    public let addBos: Bool
    /// The id of the BOS token, when the model has one.
    public let bosId: Int?
    /// Ids of tokens marked special (never produced by BPE, printed as their content).
    public let specialIds: Set<Int>

    private let vocab: [String: Int]
    private let idToToken: [String?]
    private let idToBytes: [[UInt8]]
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let added: [(content: String, id: Int, lstrip: Bool, rstrip: Bool)]
    private let normalizer: Normalizer
    private let preTokenizer: PreTokenizer
    private let ignoreMerges: Bool
    /// Pieces already split, shared by the threads that encode.
    private let cache = Locked<[String: [Int32]]>([:])

    /// Parses tokenizer.json bytes.
    /// Token ids must be below this (the largest vocabularies in use have a few hundred thousand).
    public static let maxTokenId = 1 << 24

    /// Parses tokenizer.json bytes (byte-level BPE); `addBos`: `encode` prepends `bosToken`. Throws for anything it cannot run exactly.
    public init(json bytes: [UInt8], addBos: Bool, bosToken: String? = nil) throws(SparrowError) {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw .tokenizer("tokenizer.json is not a JSON object")
        }
        guard let model = obj["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
            let vocab = model["vocab"] as? [String: Int], let rawMerges = model["merges"] as? [Any]
        else { throw .tokenizer("only BPE models with a vocab and merges are supported") }
        if model["byte_fallback"] as? Bool == true {
            throw .tokenizer("byte_fallback BPE (SentencePiece style) is not supported yet; byte-level BPE is")
        }
        if let d = obj["decoder"] as? [String: Any], let t = d["type"] as? String, t != "ByteLevel" {
            throw .tokenizer("decoder '\(t)' is not supported (byte-level BPE only)")
        }
        ignoreMerges = model["ignore_merges"] as? Bool ?? false
        var v = vocab
        let (addedList, special) = Self.addedTokens(obj["added_tokens"], into: &v)
        // Ids index tables sized by the largest: checked before anything is allocated (found by
        // Scripts/fuzz.sh tokenizer-json: a negative id trapped, a huge one would ask for terabytes).
        if let bad = v.values.first(where: { $0 < 0 || $0 >= Self.maxTokenId }) {
            throw .tokenizer("token id \(bad) is outside 0..<\(Self.maxTokenId)")
        }
        let n = (v.values.max() ?? -1) + 1
        var idToToken = [String?](repeating: nil, count: n)
        var idToBytes = [[UInt8]](repeating: [], count: n)
        let addedIds = Set(addedList.map(\.1))
        for (tok, id) in v {
            idToToken[id] = tok
            idToBytes[id] = addedIds.contains(id) ? Array(tok.utf8) : (ByteLevel.decode(tok) ?? Array(tok.utf8))
        }
        let m = try Self.merges(rawMerges, vocab: v)
        self.vocab = v
        self.count = n
        self.idToToken = idToToken
        self.idToBytes = idToBytes
        self.merges = m
        // Longest first so that a token containing another wins.
        self.added = addedList.sorted { $0.0.count > $1.0.count }.map { ($0.0, $0.1, $0.2, $0.3) }
        self.specialIds = special
        self.normalizer = try Normalizer(json: obj["normalizer"])
        self.preTokenizer = try PreTokenizer(json: obj["pre_tokenizer"])
        self.addBos = addBos
        self.bosId = bosToken.flatMap { v[$0] }
        for b in 0..<256 where v[String(ByteLevel.byteToScalar[b])] == nil {
            throw .tokenizer("vocabulary lacks byte \(b): not a byte-level BPE vocabulary")
        }
    }

    /// The added tokens of tokenizer.json (content, id, lstrip, rstrip), entered into `vocab`, and
    /// the ids of those marked special.
    private static func addedTokens(_ json: Any?, into vocab: inout [String: Int]) -> (
        [(String, Int, Bool, Bool)], Set<Int>
    ) {
        var list: [(String, Int, Bool, Bool)] = []
        var special = Set<Int>()
        for a in (json as? [[String: Any]]) ?? [] {
            guard let id = a["id"] as? Int, let content = a["content"] as? String, !content.isEmpty else { continue }
            vocab[content] = id
            list.append((content, id, a["lstrip"] as? Bool ?? false, a["rstrip"] as? Bool ?? false))
            if a["special"] as? Bool ?? false { special.insert(id) }
        }
        return (list, special)
    }

    /// The merge table: (left id, right id) → (rank, merged id); the first of duplicate pairs wins.
    private static func merges(_ raw: [Any], vocab v: [String: Int]) throws(SparrowError) -> [UInt64: (
        rank: Int32, id: Int32
    )] {
        var m: [UInt64: (rank: Int32, id: Int32)] = [:]
        for (rank, entry) in raw.enumerated() {
            let pair: [String]
            if let s = entry as? String {
                pair = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            } else if let a = entry as? [String] {
                pair = a
            } else {
                throw .tokenizer("merge \(rank) is malformed")
            }
            guard pair.count == 2, let a = v[pair[0]], let b = v[pair[1]], let c = v[pair[0] + pair[1]] else {
                throw .tokenizer("merge \(rank) names tokens missing from the vocabulary")
            }
            m[UInt64(a) << 32 | UInt64(b)] = m[UInt64(a) << 32 | UInt64(b)] ?? (Int32(rank), Int32(c))
        }
        return m
    }

    /// Token ids of `text` (added/special tokens in the text are recognised).
    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        if addBos, let b = bosId { out.append(b) }
        for segment in splitAdded(text) {
            switch segment {
            case .added(let id): out.append(id)
            case .text(let s):
                for piece in preTokenizer.split(normalizer.apply(s)) { out.append(contentsOf: bpe(String(piece))) }
            }
        }
        return out
    }

    /// The bytes a token stands for (UTF-8 text may span several tokens). Empty for unknown ids.
    public func bytes(of id: Int) -> [UInt8] {
        id >= 0 && id < idToBytes.count ? idToBytes[id] : []
    }

    /// Text of a sequence of ids; invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int]) -> String {
        var b: [UInt8] = []
        for id in ids { b += bytes(of: id) }
        return String(decoding: b, as: UTF8.self)
    }

    /// The vocabulary string of an id, if any.
    public func token(_ id: Int) -> String? { id >= 0 && id < idToToken.count ? idToToken[id] : nil }

    /// The id of a vocabulary string, if any.
    public func id(of token: String) -> Int? { vocab[token] }

    enum Segment {
        case text(String)
        case added(Int)
    }

    /// Cuts the text around occurrences of added tokens (leftmost, then longest).
    func splitAdded(_ text: String) -> [Segment] {
        guard !added.isEmpty else { return [.text(text)] }
        var out: [Segment] = []
        var rest = text[...]
        var pending = ""
        while !rest.isEmpty {
            var best: (Range<String.Index>, Int, Bool, Bool)?
            for a in added {
                if let r = rest.range(of: a.content, options: .literal),
                    best == nil || r.lowerBound < best!.0.lowerBound
                {
                    best = (r, a.id, a.lstrip, a.rstrip)
                }
            }
            guard let (r, id, lstrip, rstrip) = best else { break }
            var before = String(rest[rest.startIndex..<r.lowerBound])
            if lstrip { while before.last?.isWhitespace == true { before.removeLast() } }
            pending += before
            if !pending.isEmpty { out.append(.text(pending)) }
            pending = ""
            out.append(.added(id))
            rest = rest[r.upperBound...]
            if rstrip { rest = rest.drop(while: { $0.isWhitespace }) }
        }
        pending += rest
        if !pending.isEmpty { out.append(.text(pending)) }
        return out
    }

    /// Byte-level BPE of one pre-token.
    func bpe(_ piece: String) -> [Int] {
        if let hit = cache.withLock({ $0[piece] }) { return hit.map(Int.init) }
        let mapped = ByteLevel.encode(piece.utf8)
        var ids: [Int32]
        if ignoreMerges, let whole = vocab[mapped] {
            ids = [Int32(whole)]
        } else {
            ids = mapped.unicodeScalars.map { Int32(vocab[String($0)]!) }
            while ids.count > 1 {
                var bestRank = Int32.max
                var bestAt = -1
                var bestId: Int32 = 0
                for i in 0..<(ids.count - 1) {
                    if let m = merges[UInt64(UInt32(ids[i])) << 32 | UInt64(UInt32(ids[i + 1]))], m.rank < bestRank {
                        bestRank = m.rank
                        bestAt = i
                        bestId = m.id
                    }
                }
                if bestAt < 0 { break }
                ids[bestAt] = bestId
                ids.remove(at: bestAt + 1)
            }
        }
        cache.withLock {
            if $0.count > 100_000 { $0.removeAll(keepingCapacity: true) }
            $0[piece] = ids
        }
        return ids.map(Int.init)
    }
}

/// Turns a stream of token ids into text, holding back bytes until they form whole UTF-8 characters.
public struct TextStreamDecoder {
    private var pending: [UInt8] = []
    /// A decoder with nothing pending.
    public init() {}

    /// Adds a token's bytes; returns the text that is complete so far.
    public mutating func append(_ bytes: [UInt8]) -> String {
        pending += bytes
        var end = pending.count
        // Back off over an incomplete trailing UTF-8 sequence (at most 3 bytes).
        var i = pending.count - 1
        var back = 0
        while i >= 0 && back < 4 {
            let b = pending[i]
            if b & 0xC0 == 0x80 {
                i -= 1
                back += 1
                continue
            }
            let need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
            if need > back + 1 { end = i }
            break
        }
        let text = String(decoding: pending[0..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Whatever is left (invalid sequences become U+FFFD).
    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
