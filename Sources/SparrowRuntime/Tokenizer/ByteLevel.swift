/// GPT-2's reversible map between bytes and printable unicode scalars, used by byte-level BPE.
enum ByteLevel {
    /// byteToScalar[b] is the scalar that stands for byte b.
    static let byteToScalar: [Unicode.Scalar] = {
        var printable = Set<Int>()
        for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { printable.formUnion(r) }
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        var next = 256
        for b in 0..<256 {
            if printable.contains(b) {
                out[b] = Unicode.Scalar(UInt32(b))!
            } else {
                out[b] = Unicode.Scalar(UInt32(next))!
                next += 1
            }
        }
        return out
    }()

    /// The inverse of `byteToScalar`.
    static let scalarToByte: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { d[s.value] = UInt8(b) }
        return d
    }()

    /// Maps UTF-8 bytes to the byte-level string the vocabulary is written in.
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// Maps a vocabulary string back to bytes; nil if it has a scalar outside the byte alphabet.
    static func decode(_ token: String) -> [UInt8]? {
        var out: [UInt8] = []
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            out.append(b)
        }
        return out
    }
}
