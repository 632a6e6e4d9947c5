import Foundation

/// A small SVG line chart: decode tokens/s (y) against the memory budget in % of the model file (x).
enum BudgetPlot {
    static func svg(title: String, points: [(x: Double, y: Double, label: String)]) -> String {
        let w = 640.0, h = 400.0, left = 70.0, right = 20.0, top = 40.0, bottom = 60.0
        let sorted = points.sorted { $0.x < $1.x }
        let xTicks = roundTicks(upTo: max(100, sorted.map(\.x).max() ?? 100))
        let yTicks = roundTicks(upTo: max(1, (sorted.map(\.y).max() ?? 1) * 1.1))
        let maxX = xTicks.last!, maxY = yTicks.last!
        func px(_ x: Double) -> Double { left + x / maxX * (w - left - right) }
        func py(_ y: Double) -> Double { h - bottom - y / maxY * (h - top - bottom) }
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(w / 2)" y="22" text-anchor="middle" font-size="14">\(escape(title))</text>
            <line x1="\(left)" y1="\(h - bottom)" x2="\(w - right)" y2="\(h - bottom)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(h - bottom)" stroke="black"/>
            <text x="\((left + w - right) / 2)" y="\(h - 15)" text-anchor="middle">memory budget (% of the model file)</text>
            <text x="18" y="\((top + h - bottom) / 2)" text-anchor="middle" transform="rotate(-90 18 \((top + h - bottom) / 2))">decode tokens/s</text>

            """
        for x in xTicks {
            s += "<text x=\"\(px(x))\" y=\"\(h - bottom + 18)\" text-anchor=\"middle\">\(tickLabel(x))</text>\n"
        }
        for y in yTicks {
            s += "<text x=\"\(left - 8)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(tickLabel(y))</text>\n"
            s += "<line x1=\"\(left)\" y1=\"\(py(y))\" x2=\"\(w - right)\" y2=\"\(py(y))\" stroke=\"#ddd\"/>\n"
        }
        let path = sorted.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " ")
        s += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n"
        for p in sorted {
            s += "<circle cx=\"\(px(p.x))\" cy=\"\(py(p.y))\" r=\"4\" fill=\"#1f77b4\"/>\n"
            s +=
                "<text x=\"\(px(p.x))\" y=\"\(py(p.y) - 10)\" text-anchor=\"middle\">\(escape(p.label)): \(String(format: "%.1f", p.y))</text>\n"
        }
        return s + "</svg>\n"
    }

    /// Ticks from 0 at a round step (1, 2 or 5 × 10^k) giving at most 6 intervals, the last at or
    /// above `top`.
    static func roundTicks(upTo top: Double) -> [Double] {
        var step = pow(10, (log10(top)).rounded(.down) - 1)
        for m in [1.0, 2, 5, 10] where top / (step * m) <= 6 {
            step *= m
            break
        }
        let count = Int((top / step).rounded(.up))
        return (0...count).map { Double($0) * step }
    }

    /// A tick's value without trailing zeros (0.5, 20, 1500).
    static func tickLabel(_ v: Double) -> String { String(format: "%g", v) }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
