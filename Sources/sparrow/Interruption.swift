import Dispatch
import Foundation
import SparrowFormat

/// SIGINT and SIGTERM while a command writes files: the temporary files it was writing are
/// removed (the outputs it would have replaced stay as they were), then the process exits with
/// 128 + the signal, as a shell expects. The handler runs on a dispatch queue, not in signal context.
enum Interruption {
    private nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []

    /// Installs the handlers (once per process; commands that write call it first).
    static func removeTemporaryFilesOnSignal() {
        guard sources.isEmpty else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)  // delivered to the source instead
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                TemporaryFiles.removeAll()
                FileHandle.standardError.write(Data("\ninterrupted: nothing was written\n".utf8))
                exit(128 + sig)
            }
            source.resume()
            sources.append(source)
        }
    }
}
