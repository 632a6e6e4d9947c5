import CSparrowKernels
import SparrowFormat

extension DType {
    /// The kernel library's name for a float type (f32 for code planes, which are not read as floats).
    package var kernelType: spk_dtype {
        switch self {
        case .f32: return SPK_F32
        case .f16: return SPK_F16
        case .bf16: return SPK_BF16
        case .u2, .u4, .u8: return SPK_F32
        }
    }
}
