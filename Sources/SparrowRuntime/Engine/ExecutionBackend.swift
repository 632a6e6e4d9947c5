import SparrowKernels

/// Where a MoE step's experts run. `CPUBackend` runs them with the kernels on the session's
/// threads; an accelerator backend would implement the same call and take a share of each
/// layer's experts (HybriMoE's dynamic CPU–accelerator split), the plan giving each expert to the
/// side that finishes the layer first. The session holds one; CPU is the only one today.
protocol ExecutionBackend: AnyObject {
    var name: String { get }
    /// Runs `m` on the `rows` input rows of the slots starting at `first` (grouped by expert in
    /// the session's scratch) and writes their outputs to the same slots, with `threads` workers;
    /// `bias` is the expert's biases where the architecture has them.
    func runExpert(_ m: MLPWeights, bias: MLPBias?, first: Int, rows: Int, threads: Int)
}

/// The experts on the CPU: `slotOut = down(act(gate·x) ⊙ up·x)` with the quantized kernels.
final class CPUBackend: ExecutionBackend {
    let name = "cpu"
    private let scratch: Scratch
    private let hidden: Int
    private let intermediate: Int
    private let activation: GatedActivation

    init(scratch: Scratch, config: ModelConfig) {
        self.scratch = scratch
        hidden = config.hiddenSize
        intermediate = config.expertIntermediateSize
        activation = config.expertActivation ?? .silu
    }

    func runExpert(_ m: MLPWeights, bias: MLPBias?, first: Int, rows: Int, threads: Int) {
        let s = scratch
        var m = m
        m.bias = bias
        m.activation = activation
        m.forward(
            s.slotIn.pointer + first * hidden, rows: rows, gate: s.slotGate.pointer + first * intermediate,
            up: s.slotUp.pointer + first * intermediate, into: s.slotOut.pointer + first * hidden, threads: threads,
            act: s.actIn, actMid: s.actMid, actRow: first)
    }
}
