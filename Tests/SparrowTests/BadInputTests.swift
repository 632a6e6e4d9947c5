import Foundation
import SparrowFormat
import SparrowRuntime
import Testing

/// Every kind of wrong input gets a clear error naming the problem, never a crash or garbage.
@Suite struct BadInputTests {
    /// A copy of a small fixture checkpoint that a test may damage.
    static func checkpointCopy() throws -> String {
        let dir = Paths.temporaryDirectory() + "/ckpt"
        try FileManager.default.copyItem(atPath: Paths.fixtures + "/qwen2_moe", toPath: dir)
        return dir
    }

    /// Rewrites the safetensors header of `dir/model.safetensors` with `edit`.
    static func editSafetensors(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = dir + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try JSONSerialization.jsonObject(with: data[8..<(8 + n)]) as! [String: Any]
        edit(&header)
        var h = try JSONSerialization.data(withJSONObject: header)
        h.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - h.count % 8) % 8 + 8 * 0))
        var out = Data()
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(h)
        out.append(data[(8 + n)...])
        try out.write(to: URL(fileURLWithPath: path))
    }

    func convertError(_ dir: String, output: String? = nil, force: Bool = false) -> String {
        let out = output ?? (Paths.temporaryDirectory() + "/out.spw")
        do {
            _ = try Converter(input: dir, output: out, options: .init(force: force)).run()
            return "no error"
        } catch { return "\(error)" }
    }

    @Test func missingConfig() throws {
        let dir = try Self.checkpointCopy()
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        #expect(convertError(dir).contains("config.json"))
    }

    @Test func malformedConfig() throws {
        let dir = try Self.checkpointCopy()
        try "{ not json".write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect(convertError(dir).contains("not a valid JSON object"))
        try #"{"model_type": "qwen2_moe", "hidden_size": "big"}"#.write(
            toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        #expect(convertError(dir).contains("'hidden_size' must be an integer"))
    }

    @Test func unsupportedArchitecture() throws {
        let dir = try Self.checkpointCopy()
        try #"{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}"#.write(
            toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let e = convertError(dir)
        #expect(e.contains("unsupported architecture 'llama'") && e.contains("qwen3_moe"))
    }

    @Test func missingTensor() throws {
        let dir = try Self.checkpointCopy()
        try Self.editSafetensors(dir) { $0["model.layers.1.self_attn.k_proj.weight"] = nil }
        #expect(convertError(dir).contains("missing tensor 'model.layers.1.self_attn.k_proj.weight'"))
        try Self.editSafetensors(dir) { $0["model.layers.0.mlp.experts.3.up_proj.weight"] = nil }
    }

    @Test func wrongShape() throws {
        let dir = try Self.checkpointCopy()
        try Self.editSafetensors(dir) { h in
            var t = h["model.layers.0.mlp.experts.2.down_proj.weight"] as! [String: Any]
            t["shape"] = (t["shape"] as! [Int]).reversed() as [Int]
            h["model.layers.0.mlp.experts.2.down_proj.weight"] = t
        }
        let e = convertError(dir)
        #expect(e.contains("model.layers.0.mlp.experts.2.down_proj.weight") && e.contains("expected [128, 64]"))
    }

    @Test func wrongDtype() throws {
        let dir = try Self.checkpointCopy()
        try Self.editSafetensors(dir) { h in
            var t = h["model.norm.weight"] as! [String: Any]
            t["dtype"] = "I16"
            h["model.norm.weight"] = t
        }
        #expect(convertError(dir).contains("dtype I16 is not supported"))
    }

    @Test func truncatedSafetensors() throws {
        let dir = try Self.checkpointCopy()
        let path = dir + "/model.safetensors"
        let h = FileHandle(forUpdatingAtPath: path)!
        try h.truncate(atOffset: 100_000)
        try h.close()
        #expect(convertError(dir).contains("outside the file"))
    }

    @Test func existingOutputNeedsForceAndInputIsNeverOverwritten() throws {
        let dir = try Self.checkpointCopy()
        let out = Paths.temporaryDirectory() + "/model.spw"
        try "precious".write(toFile: out, atomically: true, encoding: .utf8)
        #expect(convertError(dir, output: out).contains("already exists"))
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "precious")
        #expect(convertError(dir, output: out, force: true) == "no error")

        let input = dir + "/model.safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        #expect(convertError(dir, output: input, force: true).contains("is one of the input files"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == before)
        #expect(convertError(dir, output: dir + "/config.json", force: true).contains("is one of the input files"))
    }

    // MARK: .spw files

    /// A private copy of the converted qwen2_moe fixture.
    static func modelCopy() throws -> String {
        let path = Paths.temporaryDirectory() + "/m.spw"
        try FileManager.default.copyItem(atPath: try Converted.path(of: Paths.fixtures + "/qwen2_moe"), toPath: path)
        return path
    }

    static func patch(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
        let h = FileHandle(forUpdatingAtPath: path)!
        try h.seek(toOffset: UInt64(offset))
        h.write(Data(bytes))
        try h.close()
    }

    static func flipByte(_ path: String, at offset: Int) throws {
        let h = FileHandle(forUpdatingAtPath: path)!
        try h.seek(toOffset: UInt64(offset))
        let b = h.readData(ofLength: 1)[0]
        try h.seek(toOffset: UInt64(offset))
        h.write(Data([b ^ 0x10]))
        try h.close()
    }

    func openError(_ path: String) -> String {
        do {
            _ = try Model(path: path)
            return "no error"
        } catch { return "\(error)" }
    }

    @Test func truncatedModel() throws {
        let path = try Self.modelCopy()
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        let h = FileHandle(forUpdatingAtPath: path)!
        try h.truncate(atOffset: UInt64(size / 2))
        try h.close()
        #expect(openError(path).contains("truncated"))
        let h2 = FileHandle(forUpdatingAtPath: path)!
        try h2.truncate(atOffset: 100)
        try h2.close()
        #expect(openError(path).contains("truncated"))
    }

    @Test func wrongMagicAndFutureVersion() throws {
        let path = try Self.modelCopy()
        try Self.patch(path, at: 0, Array("GGUF".utf8))
        #expect(openError(path).contains("not a Sparrow model file"))
        let p2 = try Self.modelCopy()
        try Self.patch(p2, at: 8, [9, 0, 0, 0])
        #expect(openError(p2).contains("format version 9 is not supported"))
        let p3 = try Self.modelCopy()
        try Self.flipByte(p3, at: 40)
        #expect(openError(p3).contains("checksum mismatch in the header"))
    }

    @Test func flippedDenseTensorBit() throws {
        let path = try Self.modelCopy()
        let file = try SPWFile(path: path)
        let t = file.tensor("layers.1.o")!
        try Self.flipByte(path, at: t.offset + 100)
        #expect(openError(path).contains("checksum mismatch in tensor 'layers.1.o'"))
    }

    @Test func flippedMetaBit() throws {
        let path = try Self.modelCopy()
        let file = try SPWFile(path: path)
        let meta = file.sections.first { $0.kind == .meta }!
        try Self.flipByte(path, at: Int(meta.offset) + 10)
        #expect(openError(path).contains("checksum mismatch in section meta"))
    }

    @Test func flippedExpertBitIsAnErrorWhenUsed() throws {
        let path = try Self.modelCopy()
        let file = try SPWFile(path: path)
        let model = try Model(path: path)
        let config = model.config
        // Flip a byte in every expert of layer 1 so whichever the router picks is corrupt.
        for e in 0..<config.expertCount {
            try Self.flipByte(path, at: Int(file.expert(layer: 1, expert: e)!.offset) + 64)
        }
        let session = try Session(model: try Model(path: path))
        do {
            _ = try session.evaluate([1, 2, 3], logits: .last)
            Issue.record("corrupt expert was used without an error")
        } catch {
            #expect("\(error)".contains("expert record layer 1 expert"))
        }
        #expect(throws: FormatError.self) { try SPWFile(path: path).verifyAll() }
    }

    @Test func badRequests() throws {
        let model = try Converted.model(Paths.fixtures + "/qwen2_moe")
        let session = try Session(model: model, options: .init(contextLength: 8))
        #expect(throws: SparrowError.self) { try session.evaluate([]) }
        #expect(throws: SparrowError.self) { try session.evaluate([model.config.vocabSize]) }
        #expect(throws: SparrowError.self) { try session.evaluate([-1]) }
        #expect(throws: SparrowError.self) { try session.evaluate(Array(repeating: 1, count: 9)) }
        #expect(throws: SparrowError.self) { try Session(model: model, options: .init(contextLength: 0)) }
    }

    /// Safetensors headers whose numbers overflow (found by Scripts/fuzz.sh safetensors: a header
    /// length above Int.max trapped) are format errors.
    @Test func safetensorsNumbersThatOverflow() throws {
        let dir = Paths.temporaryDirectory()
        func refuses(_ bytes: [UInt8]) -> Bool {
            let path = dir + "/x.safetensors"
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do { _ = try SafeTensorsFile(path: path) } catch { return true }
            return false
        }
        func file(_ header: String, data: Int = 16) -> [UInt8] {
            var h = Array(header.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            return withUnsafeBytes(of: UInt64(h.count).littleEndian, Array.init) + h
                + [UInt8](repeating: 0, count: data)
        }
        #expect(refuses([0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + Array("{}".utf8)))  // length > Int.max
        #expect(refuses(file(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,9223372036854775807]}}"#)))
        #expect(
            refuses(
                file(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[9223372036854775807,9223372036854775807]}}"#)))
        #expect(refuses(file(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}"#)))
        #expect(refuses(file(#"{"a":{"dtype":"F32","shape":[-4,-1],"data_offsets":[0,16]}}"#)))
        #expect(!refuses(file(#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#)))
    }

    /// A converted file names its source by the checkpoint's own name or its folder's base name,
    /// never by the converting machine's directories.
    @Test func provenanceHasNoLocalPaths() throws {
        for (nameOrPath, expected) in [
            (nil, "ckpt"), ("/home/someone/private/qwen", "ckpt"), ("org/qwen2-moe-tiny", "org/qwen2-moe-tiny")
        ] {
            let dir = try Self.checkpointCopy()
            if let nameOrPath {
                let url = URL(fileURLWithPath: dir + "/config.json")
                var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
                config["_name_or_path"] = nameOrPath
                try JSONSerialization.data(withJSONObject: config).write(to: url)
            }
            let out = dir + "/../out.spw"
            _ = try Converter(input: dir, output: out, options: .init()).run()
            let source = try Model(path: out).meta.provenance.source
            #expect(source == expected)
            #expect(!source.contains(Paths.temporaryDirectory().split(separator: "/").first.map(String.init) ?? "/tmp"))
            try? FileManager.default.removeItem(atPath: out)
        }
    }

    /// A FIFO (or any non-regular file) as a model, a config or a profile is an error at once, not
    /// an open that waits for a writer forever.
    @Test func nonRegularFilesAreRefused() throws {
        let dir = Paths.temporaryDirectory()
        let fifo = dir + "/model.spw"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: Error.self) { try Model(path: fifo) }
        let checkpoint = dir + "/checkpoint"
        try FileManager.default.createDirectory(atPath: checkpoint, withIntermediateDirectories: true)
        #expect(mkfifo(checkpoint + "/config.json", 0o600) == 0)
        let r = try runCLI(["convert", checkpoint, "-o", dir + "/out.spw"])
        #expect(r.status != 0 && r.stderr.contains("config.json"), "\(r.stderr)")
        #expect(!RegularFile.isRegular(fifo) && RegularFile.contents(atPath: fifo) == nil)
    }

    /// Sizes that would ask for impossible memory are typed errors or held to what the model can use.
    @Test func absurdSessionSizes() throws {
        let model = try Converted.model(Paths.fixtures + "/qwen2_moe")
        func message(_ options: SessionOptions) -> String? {
            do { _ = try Session(model: model, options: options) } catch { return "\(error)" }
            return nil
        }
        #expect(message(.init(contextLength: Int(Int32.max)))?.contains("max_position_embeddings") == true)
        #expect(message(.init(contextLength: model.config.maxPositions + 1)) != nil)
        #expect(message(.init(threads: Int(Int32.max)))?.contains("threads") == true)
        let big = try Session(model: model, options: .init(contextLength: 16, batchSize: Int(Int32.max)))
        #expect(big.batchSize == 16)
        let huge = try Session(model: model, options: .init(contextLength: 16, budget: Int.max))
        _ = try huge.evaluate([1, 2, 3])
        var stream = TokenGenerator(
            session: huge, prompt: [1, 2], options: GenerationOptions(maxTokens: Int(Int32.max)))
        var n = 0
        while try stream.next() != nil { n += 1 }
        #expect(n > 0 && n <= 16)
    }

    /// A write that fails part-way — here the file-size limit (`ulimit -f`, SIGXFSZ ignored, so
    /// writes fail with EFBIG as they would with ENOSPC on a full disk) — leaves what the user had:
    /// `convert` keeps the old model file and `profile` the old profile, with an error naming the
    /// file and no temporary file left behind.
    @Test func failedWritesLeaveTheOldFiles() throws {
        let dir = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func limited(_ kib: Int, _ args: [String]) throws -> CLIResult {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = ["-c", "trap '' XFSZ; ulimit -f \(kib); exec \"$0\" \"$@\"", Paths.cli] + args
            let out = Pipe()
            let err = Pipe()
            p.standardOutput = out
            p.standardError = err
            try p.run()
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return CLIResult(status: p.terminationStatus, stdout: stdout, stderr: stderr)
        }
        let model = dir + "/m.spw"
        try Data("an older model".utf8).write(to: URL(fileURLWithPath: model))
        var r = try limited(2048, ["convert", Paths.demo, "-o", model, "--force"])  // 2 MiB of an 18 MiB file
        #expect(
            r.status == 1 && r.stderr.contains("write failed") && r.stderr.contains("File too large"), "\(r.stderr)")
        #expect(try String(contentsOfFile: model, encoding: .utf8) == "an older model")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["m.spw"])

        try FileManager.default.removeItem(atPath: model)
        try FileManager.default.copyItem(atPath: try Converted.path(of: Paths.demo, tag: "float"), toPath: model)
        let profile = ExpertProfile.path(for: model)
        try Data("{\"older\": true}".utf8).write(to: URL(fileURLWithPath: profile))
        r = try limited(4, ["profile", "-m", model, "--text", Paths.demo + "/eval-text.txt", "--tokens", "256"])
        #expect(r.status == 1 && r.stderr.contains("File too large"), "\(r.stderr)")
        #expect(try String(contentsOfFile: profile, encoding: .utf8) == "{\"older\": true}")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == ["m.spw", "m.spw.profile.json"])
    }

    /// SIGINT (or SIGTERM) while `convert` writes: the temporary file goes, the old output stays,
    /// exit status 130.
    @Test func interruptedConvertLeavesTheOldFile() throws {
        let dir = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = dir + "/m.spw"
        try Data("an older model".utf8).write(to: URL(fileURLWithPath: model))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Paths.cli)
        p.arguments = ["convert", Paths.demo, "-o", model, "--force"]
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let temporary = model + ".tmp-\(p.processIdentifier)"
        var waited = 0
        while !FileManager.default.fileExists(atPath: temporary) && p.isRunning && waited < 20_000 {
            usleep(200)
            waited += 1
        }
        try #require(p.isRunning, "convert finished before it could be interrupted")
        kill(p.processIdentifier, SIGINT)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130 && message.contains("interrupted"), "\(p.terminationStatus): \(message)")
        #expect(try String(contentsOfFile: model, encoding: .utf8) == "an older model")
        // A signal between creating the temporary file and listing it once left it behind (seen
        // under load): both now happen under the lock the handler takes.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(left == ["m.spw"], "\(left)")
    }
}
