import Foundation
import SparrowFormat
import SparrowRuntime

/// Paths of the repository, its fixtures and a scratch folder for the tests.
enum Paths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let fixtures = repo + "/Tests/SparrowTests/Fixtures"
    static let demo = repo + "/Models/tiny-qwen3moe"
    /// Every architecture with a transformers fixture.
    static let architectures = ["qwen3_moe", "qwen2_moe", "mixtral", "olmoe", "gpt_oss", "deepseek_v2", "deepseek_v3"]
    /// The SwiGLU families `widen_experts.py` widens exactly (gpt-oss's clamp and `up + 1` do not
    /// split into copies).
    static let widenable = ["qwen3_moe", "qwen2_moe", "mixtral", "olmoe"]
    /// The architectures whose fixture has `samples.npy`, text the float model sampled itself:
    /// their quantized levels are judged by perplexity on it rather than logit by logit (top-k
    /// then softmax routing makes a random-init model's logits jump where a near tie flips).
    static let sampled = architectures.filter {
        FileManager.default.fileExists(atPath: fixtures + "/\($0)/samples.npy")
    }

    /// The first `n` of the demo's held-out tokens.
    static func demoTokens(_ n: Int) throws -> [Int] {
        Array(try NPY.readInt(demo + "/eval-tokens.npy").values.prefix(n))
    }

    /// A fresh temporary directory (removed by the OS eventually; tests clean up what is large).
    static func temporaryDirectory() -> String {
        let dir = NSTemporaryDirectory() + "sparrow-tests-\(getpid())-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The built `sparrow` executable next to the test bundle.
    static var cli: String {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("sparrow").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        for config in ["release", "debug"] {
            let p = repo + "/.build/\(config)/sparrow"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return repo + "/.build/debug/sparrow"
    }
}

/// Converted models shared by the tests of one process (conversion is deterministic).
enum Converted {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: String] = [:]
    nonisolated(unsafe) private static var dir: String?

    /// Path of `source` converted to .spw (converted once per process). Without a scheme the
    /// conversion is exact (float experts); `tag` names other option sets.
    static func path(of source: String, options: Converter.Options = .unquantized(force: true), tag: String = "float")
        throws -> String
    {
        lock.lock()
        defer { lock.unlock() }
        let key = source + "#" + tag
        if let p = cache[key] { return p }
        if dir == nil { dir = Paths.temporaryDirectory() }
        let out = dir! + "/" + URL(fileURLWithPath: source).lastPathComponent + "-\(tag).spw"
        var o = options
        o.force = true
        _ = try Converter(input: source, output: out, options: o).run()
        cache[key] = out
        return out
    }

    static func model(_ source: String, options: Converter.Options = .unquantized(force: true), tag: String = "float")
        throws -> Model
    {
        try Model(path: try path(of: source, options: options, tag: tag))
    }
}

/// Result of running the CLI.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs the `sparrow` executable with arguments.
func runCLI(_ args: [String], environment: [String: String] = [:]) throws -> CLIResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: Paths.cli)
    p.arguments = args
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIResult(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

/// Largest absolute difference between two arrays.
func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    var m: Float = 0
    for i in 0..<min(a.count, b.count) { m = max(m, abs(a[i] - b[i])) }
    return m
}

/// Converting a copy of fixture `arch` whose config.json has `key` set to `value` (JSON text):
/// the error's description, or nil if it converted.
func conversionError(_ arch: String, key: String, value: String) throws -> String? {
    let dir = Paths.temporaryDirectory() + "/ckpt"
    try FileManager.default.copyItem(atPath: Paths.fixtures + "/" + arch, toPath: dir)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let url = URL(fileURLWithPath: dir + "/config.json")
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    json[key] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
    try JSONSerialization.data(withJSONObject: json).write(to: url)
    do {
        _ = try Converter(input: dir, output: dir + "/out.spw", options: .init(force: true)).run()
        return nil
    } catch { return "\(error)" }
}

/// The logits of every token of `ids`, evaluated `batch` tokens at a time.
func evaluate(_ ids: [Int], batch: Int, in session: Session) throws -> [Float] {
    var logits: [Float] = []
    for start in stride(from: 0, to: ids.count, by: batch) {
        logits += try session.evaluate(Array(ids[start..<min(start + batch, ids.count)]), logits: .all)
    }
    return logits
}

/// Converting a copy of checkpoint folder `source` whose tensor `name` has `byte` written at
/// byte `offset` of its data: the error's description, or nil if it converted.
func conversionError(copying source: String, writing byte: UInt8, into name: String, at offset: Int) throws -> String? {
    let dir = Paths.temporaryDirectory() + "/patched"
    try FileManager.default.copyItem(atPath: source, toPath: dir)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/model.safetensors"
    let start = try SafeTensorsFile(path: path).tensors[name]!.range.lowerBound
    let h = FileHandle(forUpdatingAtPath: path)!
    try h.seek(toOffset: UInt64(start + offset))
    h.write(Data([byte]))
    try h.close()
    do {
        _ = try Converter(input: dir, output: dir + "/out.spw", options: .unquantized(force: true)).run()
        return nil
    } catch { return "\(error)" }
}
