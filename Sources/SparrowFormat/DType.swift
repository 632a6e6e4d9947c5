import CSparrowKernels

/// Element type of a stored tensor.
public enum DType: String, Codable, Sendable, CaseIterable {
    case f32, f16, bf16

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        }
    }

    /// The kernel library's name for this type.
    public var kernelType: spk_dtype {
        switch self {
        case .f32: return SPK_F32
        case .f16: return SPK_F16
        case .bf16: return SPK_BF16
        }
    }

    /// Parses a safetensors dtype name ("F32", "F16", "BF16").
    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        default: return nil
        }
    }
}
