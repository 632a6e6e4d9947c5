/// Sparrow: run sparse Mixture-of-Experts language models in less memory than the model.
///
/// Import `Sparrow` to get `Model`, `Session`, `Tokenizer`, `Sampler` and `Converter`.
@_exported import SparrowRuntime
@_exported import struct SparrowIO.BlockReaderOptions
@_exported import enum SparrowIO.IOMode
@_exported import struct SparrowIO.IOError
@_exported import enum SparrowFormat.FormatError
@_exported import enum SparrowFormat.DType
@_exported import struct SparrowQuant.MatryoshkaScheme
@_exported import enum SparrowQuant.QuantError
