/// Element type of a stored tensor: a float type, or a plane of W-bit quantization codes
/// (`u2`, `u4`, `u8`; see docs/QUANT.md).
public enum DType: String, Codable, Sendable, CaseIterable {
    case f32, f16, bf16
    case u2, u4, u8

    /// Bits per element.
    public var bits: Int {
        switch self {
        case .f32: return 32
        case .f16, .bf16: return 16
        case .u2: return 2
        case .u4: return 4
        case .u8: return 8
        }
    }

    /// Bytes per element of a float type (planes pack several elements per byte: use `bytes(count:)`).
    package var size: Int { bits / 8 }

    /// Bytes that `count` elements occupy.
    package func bytes(count: Int) -> Int { count * bits / 8 }

    /// Whether this is a float type the kernels read directly.
    package var isFloat: Bool { self == .f32 || self == .f16 || self == .bf16 }

    /// The code-plane type of a given width in bits.
    package static func plane(width: Int) -> DType? {
        switch width {
        case 2: return .u2
        case 4: return .u4
        case 8: return .u8
        default: return nil
        }
    }

    /// Parses a safetensors dtype name ("F32", "F16", "BF16").
    package init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "F16": self = .f16
        case "BF16": self = .bf16
        default: return nil
        }
    }
}
