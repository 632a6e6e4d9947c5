import Foundation
import SparrowFormat
import SparrowKernels

/// Where a forward pass gets an expert's weights from. The seam where the budgeted cache and the
/// io_uring loader plug in; today's implementation reads the mapped file.
protocol ExpertStore: AnyObject, Sendable {
    /// The expert's gate, up and down matrices at `level`, valid until the next call for this layer.
    func weights(layer: Int, expert: Int, level: Int) throws(SparrowError) -> MLPWeights
}

/// Experts read straight from the memory-mapped file (the whole model resident or paged by the
/// kernel). Each record level is checked against its checksum the first time it is used, so a
/// corrupt record is an error naming the layer and expert rather than garbage logits.
final class MappedExpertStore: ExpertStore, @unchecked Sendable {
    private let file: SPWFile
    private let levels: [ExpertLevelLayout]
    private let expertCount: Int
    private var verified: [Bool]
    private let lock = NSLock()

    init(file: SPWFile, config: ModelConfig) throws(SparrowError) {
        self.file = file
        self.levels = file.directory.expertLevels
        self.expertCount = config.expertCount
        verified = Array(repeating: false, count: config.layerCount * config.expertCount * max(1, levels.count))
        for l in 0..<config.layerCount where config.moeLayers[l] {
            for e in 0..<config.expertCount where file.expert(layer: l, expert: e) == nil {
                throw .format(.corrupt(path: file.path, what: "no record for layer \(l) expert \(e)"))
            }
        }
        guard let top = levels.last, top.components.count == 3,
            top.components[0].shape == [config.expertIntermediateSize, config.hiddenSize],
            top.components[1].shape == [config.expertIntermediateSize, config.hiddenSize],
            top.components[2].shape == [config.hiddenSize, config.expertIntermediateSize]
        else {
            if config.moeLayerCount == 0 { return }
            throw .format(.corrupt(path: file.path, what: "expert record layout does not match the model's shape"))
        }
    }

    func weights(layer: Int, expert: Int, level: Int) throws(SparrowError) -> MLPWeights {
        guard let entry = file.expert(layer: layer, expert: expert), level >= 0, level < entry.levels.count else {
            throw .invalidArgument("no expert record for layer \(layer) expert \(expert) level \(level)")
        }
        let key = (layer * expertCount + expert) * levels.count + level
        lock.lock()
        let ok = verified[key]
        lock.unlock()
        if !ok {
            do { for k in 0...level { try file.verifyExpert(entry, level: k) } } catch { throw .format(error) }
            lock.lock()
            verified[key] = true
            lock.unlock()
        }
        let base = file.mappedExpert(entry, level: level).baseAddress!
        let c = levels[level].components
        func m(_ i: Int) -> WeightMatrix {
            WeightMatrix(base: base + c[i].offset, type: c[i].dtype.kernelType, rows: c[i].shape[0], cols: c[i].shape[1])
        }
        return MLPWeights(gate: m(0), up: m(1), down: m(2))
    }
}
