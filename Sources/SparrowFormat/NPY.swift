import Foundation

/// Reading and writing NumPy `.npy` arrays (version 1.0, little-endian, C order): the format the
/// reference data and `sparrow logits` use.
package enum NPY {
    /// A loaded array: shape and values widened to Double-free Swift arrays of its element type.
    package struct Array<Element> {
        package var shape: [Int]
        package var values: [Element]
    }

    /// Writes float32 values with `shape` to `path` (atomically).
    package static func write(_ values: [Float], shape: [Int], to path: String) throws(FormatError) {
        guard shape.reduce(1, *) == values.count else {
            throw .invalidArgument("npy: shape does not match value count")
        }
        var header =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", "))\(shape.count == 1 ? "," : "")), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Swift.Array("NUMPY".utf8) + [1, 0])
        let len = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(len & 0xff), UInt8(len >> 8)])
        data.append(contentsOf: header.utf8)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw .io(
                path: path, operation: "write",
                errno: (error as NSError).code == 0 ? EIO : Int32((error as NSError).code))
        }
    }

    /// Reads a float32 array.
    package static func readFloat32(_ path: String) throws(FormatError) -> Array<Float> {
        let (descr, shape, body) = try parse(path)
        guard descr == "<f4" else { throw .corrupt(path: path, what: "npy dtype \(descr), expected <f4") }
        return Array(shape: shape, values: body.withUnsafeBytes { Swift.Array($0.bindMemory(to: Float.self)) })
    }

    /// Reads an int32 or int64 array as Int.
    package static func readInt(_ path: String) throws(FormatError) -> Array<Int> {
        let (descr, shape, body) = try parse(path)
        switch descr {
        case "<i4":
            return Array(shape: shape, values: body.withUnsafeBytes { $0.bindMemory(to: Int32.self).map(Int.init) })
        case "<i8":
            return Array(shape: shape, values: body.withUnsafeBytes { $0.bindMemory(to: Int64.self).map(Int.init) })
        default: throw .corrupt(path: path, what: "npy dtype \(descr), expected <i4 or <i8")
        }
    }

    private static func parse(_ path: String) throws(FormatError) -> (String, [Int], Data) {
        guard let data = RegularFile.contents(atPath: path) else {
            throw .io(path: path, operation: "read", errno: ENOENT)
        }
        guard data.count >= 10, data.prefix(6) == Data([0x93] + Swift.Array("NUMPY".utf8)) else {
            throw .badMagic(path: path)
        }
        let major = data[6]
        let headerLen: Int
        let start: Int
        if major == 1 {
            headerLen = Int(data[8]) | Int(data[9]) << 8
            start = 10
        } else {
            guard data.count >= 12 else { throw .truncated(path: path, expected: 12, actual: UInt64(data.count)) }
            headerLen = Int(data[8]) | Int(data[9]) << 8 | Int(data[10]) << 16 | Int(data[11]) << 24
            start = 12
        }
        guard data.count >= start + headerLen else {
            throw .truncated(path: path, expected: UInt64(start + headerLen), actual: UInt64(data.count))
        }
        let header = String(decoding: data[start..<(start + headerLen)], as: UTF8.self)
        guard let d = header.range(of: "'descr': '")?.upperBound, let dEnd = header[d...].firstIndex(of: "'"),
            let s = header.range(of: "'shape': (")?.upperBound, let sEnd = header[s...].firstIndex(of: ")")
        else { throw .corrupt(path: path, what: "npy header") }
        if header.contains("'fortran_order': True") { throw .corrupt(path: path, what: "fortran-order npy") }
        let shape = header[s..<sEnd].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let body = data[(start + headerLen)...]
        let descr = String(header[d..<dEnd])
        let size = descr.hasSuffix("8") ? 8 : 4
        guard body.count == shape.reduce(1, *) * size else {
            throw .truncated(
                path: path, expected: UInt64(start + headerLen + shape.reduce(1, *) * size), actual: UInt64(data.count))
        }
        return (descr, shape, Data(body))
    }
}
