/// Finished reads in completion order, for `BlockReader.next`: a tag is handed out once,
/// and tags already waited for by `wait(tag:)` are skipped. Bounded: entries a caller only waits
/// for per tag are dropped. Not thread-safe (each reader guards it as it guards its own state).
struct CompletionQueue {
    private var order: [Int] = []
    private var head = 0
    /// Per tag: already returned by `next()` or waited for.
    private var taken: [Bool]

    init(tags: Int) { taken = Array(repeating: true, count: tags) }

    /// A read of `tag` was issued.
    mutating func issued(_ tag: Int) { taken[tag] = false }

    /// The read of `tag` finished.
    mutating func finished(_ tag: Int) {
        order.append(tag)
        if order.count - head > 2 * taken.count {  // the caller waits per tag: keep it bounded
            order = order[head...].filter { !taken[$0] }
            head = 0
        }
    }

    /// `tag` was waited for directly; `next()` will not return it.
    mutating func waited(_ tag: Int) { taken[tag] = true }

    /// The oldest finished tag not yet taken, nil when there is none.
    mutating func next() -> Int? {
        while head < order.count {
            let tag = order[head]
            head += 1
            if !taken[tag] {
                taken[tag] = true
                return tag
            }
        }
        order.removeAll(keepingCapacity: true)
        head = 0
        return nil
    }
}
