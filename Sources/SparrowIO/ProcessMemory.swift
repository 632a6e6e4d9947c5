import Foundation

/// Resident memory of this process as the kernel reports it (/proc/self/status): what a memory
/// budget is accounted against.
package enum ProcessMemory {
    /// Peak resident set size (VmHWM) in bytes, 0 where unavailable.
    package static var peakRSS: Int { field("VmHWM:") }
    /// Current resident set size (VmRSS) in bytes.
    package static var currentRSS: Int { field("VmRSS:") }

    private static func field(_ name: String) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix(name) {
            let kb = line.dropFirst(name.count).trimmingCharacters(in: .whitespaces).split(separator: " ").first
            return (kb.flatMap { Int($0) } ?? 0) * 1024
        }
        return 0
    }
}
