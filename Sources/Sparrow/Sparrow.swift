/// Sparrow: run sparse Mixture-of-Experts language models in less memory than the model.
///
/// Import `Sparrow` to get `Model`, `Session`, `Tokenizer`, `Sampler` and `Converter`.
@_exported import SparrowRuntime
@_exported import SparrowFormat
@_exported import SparrowQuant
@_exported import SparrowIO
