import Foundation
import Sparrow

extension Timeline {
    /// An SVG of the spans: a compute row and an I/O row over time, coloured by kind, each span
    /// labelled with its layer.
    func svg(title: String) -> String {
        let all = recorded
        let escaped = title.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
        let t0 = all.first?.start ?? 0
        let t1 = max(t0 + 1e-6, all.map(\.end).max() ?? 1)
        let workers = (all.compactMap(\.thread).max() ?? -1) + 1
        let w = 1200.0, left = 90.0, right = 20.0, rowH = 40.0, workerH = 18.0, top = 50.0
        let ioY = top + rowH + 10 + Double(workers) * (workerH + 4) + 10
        let h = ioY + rowH + 20 + 90
        func x(_ t: Double) -> Double { left + (t - t0) / (t1 - t0) * (w - left - right) }
        let colours: [Kind: String] = [
            .attention: "#9e9e9e", .resident: "#2ca02c", .awaited: "#d62728",
            .miss: "#1f77b4", .downgrade: "#ff7f0e", .prefetch: "#9467bd", .upgrade: "#8c564b"
        ]
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(w / 2)" y="22" text-anchor="middle" font-size="14">\(escaped)</text>
            <text x="10" y="\(top + rowH / 2 + 4)">compute</text>
            <text x="10" y="\(ioY + rowH / 2 + 4)">I/O lane</text>

            """
        for k in 0..<workers {
            s +=
                "<text x=\"10\" y=\"\(top + rowH + 10 + Double(k) * (workerH + 4) + workerH / 2 + 4)\">thread \(k)</text>\n"
        }
        for span in all {
            let (y, height) =
                span.isIO
                ? (ioY, rowH)
                : span.thread.map { (top + rowH + 10 + Double($0) * (workerH + 4), workerH) } ?? (top, rowH)
            let x0 = x(span.start), width = max(0.5, x(span.end) - x0)
            s +=
                "<rect x=\"\(x0)\" y=\"\(y)\" width=\"\(width)\" height=\"\(height)\" fill=\"\(colours[span.kind]!)\" stroke=\"white\" stroke-width=\"0.3\"><title>\(span.kind.rawValue), layer \(span.layer), \(String(format: "%.3f", (span.end - span.start) * 1000)) ms</title></rect>\n"
            if width > 14 {
                s +=
                    "<text x=\"\(x0 + width / 2)\" y=\"\(y + height / 2 + 4)\" text-anchor=\"middle\" fill=\"white\">\(span.layer)</text>\n"
            }
        }
        let axisY = ioY + rowH + 20
        s += "<line x1=\"\(left)\" y1=\"\(axisY)\" x2=\"\(w - right)\" y2=\"\(axisY)\" stroke=\"black\"/>\n"
        for i in 0...10 {
            let t = t0 + (t1 - t0) * Double(i) / 10
            s +=
                "<text x=\"\(x(t))\" y=\"\(axisY + 15)\" text-anchor=\"middle\">\(String(format: "%.2f", (t - t0) * 1000)) ms</text>\n"
        }
        var lx = left
        for kind in [Kind.attention, .resident, .awaited, .miss, .downgrade, .prefetch, .upgrade] {
            s +=
                "<rect x=\"\(lx)\" y=\"\(axisY + 35)\" width=\"12\" height=\"12\" fill=\"\(colours[kind]!)\"/><text x=\"\(lx + 16)\" y=\"\(axisY + 45)\">\(kind.rawValue)</text>\n"
            lx += 110
        }
        s +=
            "<text x=\"\(left)\" y=\"\(axisY + 70)\">numbers: layer. compute: attention, experts already cached (resident), experts whose read was awaited; thread rows: one expert each, run in parallel; I/O: reads by kind, issue to landing.</text>\n"
        return s + "</svg>\n"
    }
}
