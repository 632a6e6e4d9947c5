/// Generated tokens as an async sequence, one decode step per element:
///
/// ```swift
/// let session = try Session(model: model, options: .init(budget: 256 << 20))
/// for try await token in session.generate(prompt: "Once upon a time", options: .init(maxTokens: 32)) {
///     print(token.text, terminator: "")
/// }
/// ```
///
/// Each step runs on the task that iterates (the work is synchronous compute; iterate from a
/// task that may block). A cancelled task ends the sequence after the step in progress. Errors
/// are typed: `SparrowError`.
public struct TokenStream: AsyncSequence {
    /// Each generated token with its text.
    public typealias Element = GeneratedToken
    /// What generation can fail with.
    public typealias Failure = SparrowError

    let session: Session
    let prompt: [Int]
    let options: GenerationOptions

    /// An iterator that starts generating on its first `next()`.
    public func makeAsyncIterator() -> Iterator {
        Iterator(generator: TokenGenerator(session: session, prompt: prompt, options: options))
    }

    /// Generates one token per `next()`.
    public struct Iterator: AsyncIteratorProtocol {
        var generator: TokenGenerator

        /// Timing of the generation so far.
        public var stats: GenerationStats { generator.stats }

        /// The next token, nil once generation has stopped (token limit or end of sequence).
        public mutating func next() async throws(SparrowError) -> GeneratedToken? {
            if Task.isCancelled { return nil }
            return try generator.next()
        }
    }
}

extension Session {
    /// The tokens generated after `prompt` (token ids) as an async sequence.
    public func generate(prompt: [Int], options: GenerationOptions = .init()) -> TokenStream {
        TokenStream(session: self, prompt: prompt, options: options)
    }

    /// The tokens generated after `prompt` (text, tokenized with the model's tokenizer).
    public func generate(prompt: String, options: GenerationOptions = .init()) -> TokenStream {
        TokenStream(session: self, prompt: model.tokenizer.encode(prompt), options: options)
    }
}
