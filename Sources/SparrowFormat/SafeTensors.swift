import Foundation

/// One tensor in a safetensors file: where its bytes are and what they hold.
public struct SafeTensorInfo: Sendable {
    package let name: String
    /// The safetensors dtype name as written in the file ("BF16", "F32", ...).
    package let dtypeName: String
    package let shape: [Int]
    /// Byte range inside the file (absolute).
    package let range: Range<Int>
    /// Parsed type, nil when Sparrow cannot read it.
    package var dtype: DType? { DType(safetensorsName: dtypeName) }
    package var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file. Tensors are read lazily through the mapping,
/// so a checkpoint larger than RAM is never loaded whole.
public final class SafeTensorsFile: @unchecked Sendable {
    package let file: MappedFile
    public let tensors: [String: SafeTensorInfo]

    public init(path: String) throws(FormatError) {
        file = try MappedFile(path: path)
        let b = file.bytes
        guard b.count >= 8 else { throw .truncated(path: path, expected: 8, actual: UInt64(b.count)) }
        let rawLength = b.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard rawLength > 0, rawLength <= UInt64(b.count - 8), rawLength < 100_000_000 else {
            throw .corrupt(path: path, what: "safetensors header length \(rawLength) exceeds the file")
        }
        let headerLength = Int(rawLength)
        let headerData = Data(UnsafeRawBufferPointer(rebasing: b[8..<(8 + headerLength)]))
        guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw .corrupt(path: path, what: "safetensors header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        var out: [String: SafeTensorInfo] = [:]
        for (name, value) in json where name != "__metadata__" {
            guard let entry = value as? [String: Any],
                let dtype = entry["dtype"] as? String,
                let shape = entry["shape"] as? [Int],
                let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw .corrupt(path: path, what: "safetensors entry '\(name)' is malformed") }
            // Compared before any sum: offsets near Int.max must not overflow.
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= b.count - dataStart else {
                throw .badTensor(path: path, name: name, problem: "data range \(offsets) lies outside the file")
            }
            let start = dataStart + offsets[0]
            let end = dataStart + offsets[1]
            if let dt = DType(safetensorsName: dtype) {
                let expected = Self.byteCount(shape: shape, elementSize: dt.size)
                guard expected == end - start else {
                    throw .badTensor(
                        path: path, name: name,
                        problem:
                            "shape \(shape) of \(dtype) needs \(expected.map(String.init) ?? "an impossible number of") bytes but the file holds \(end - start)"
                    )
                }
            }
            out[name] = SafeTensorInfo(name: name, dtypeName: dtype, shape: shape, range: start..<end)
        }
        tensors = out
    }

    /// Bytes of a tensor of `shape` (nil when a dimension is negative or the product overflows).
    static func byteCount(shape: [Int], elementSize: Int) -> Int? {
        var total = elementSize
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            total = p
        }
        return total
    }

    /// The raw bytes of a tensor, valid while this object lives.
    public func bytes(of info: SafeTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[info.range])
    }
}

/// A checkpoint spread over one or more safetensors files (with `model.safetensors.index.json`).
package final class SafeTensorsCheckpoint: @unchecked Sendable {
    package let directory: String
    package let files: [SafeTensorsFile]
    private let owner: [String: Int]

    /// Opens `model.safetensors.index.json` when present, else every `*.safetensors` in `directory`.
    package init(directory: String) throws(FormatError) {
        self.directory = directory
        let fm = FileManager.default
        let indexPath = directory + "/model.safetensors.index.json"
        var names: [String]
        if fm.fileExists(atPath: indexPath) {
            guard let data = RegularFile.contents(atPath: indexPath),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let map = json["weight_map"] as? [String: String]
            else { throw .corrupt(path: indexPath, what: "weight_map is missing or malformed") }
            names = Array(Set(map.values)).sorted()
        } else {
            let all = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            names = all.filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !names.isEmpty else {
            throw .invalidArgument("\(directory): no *.safetensors files found")
        }
        var files: [SafeTensorsFile] = []
        var owner: [String: Int] = [:]
        for (i, name) in names.enumerated() {
            let path = directory + "/" + name
            guard fm.fileExists(atPath: path) else {
                throw .io(path: path, operation: "open", errno: ENOENT)
            }
            let f = try SafeTensorsFile(path: path)
            for key in f.tensors.keys { owner[key] = i }
            files.append(f)
        }
        self.files = files
        self.owner = owner
    }

    /// Names of all tensors across the shards.
    package var tensorNames: [String] { Array(owner.keys) }

    /// Looks a tensor up by name.
    package func info(_ name: String) -> (SafeTensorsFile, SafeTensorInfo)? {
        guard let i = owner[name], let t = files[i].tensors[name] else { return nil }
        return (files[i], t)
    }

    /// Throws `.truncated` if a shard shrank while it was read (its bytes read as zeros since).
    package func checkIntact() throws(FormatError) {
        for f in files { try f.file.checkIntact() }
    }

    /// Paths of the shard files (the converter must never write over one of them).
    package var paths: [String] { files.map(\.file.path) }
}
