import Foundation

/// A small SVG line chart: decode tokens/s (y) against the memory budget in % of the model file (x).
enum BudgetPlot {
    static func svg(title: String, points: [(x: Double, y: Double, label: String)]) -> String {
        let w = 640.0, h = 400.0, left = 70.0, right = 20.0, top = 40.0, bottom = 60.0
        let sorted = points.sorted { $0.x < $1.x }
        let maxX = max(100, (sorted.map(\.x).max() ?? 100) * 1.05)
        let maxY = max(1, (sorted.map(\.y).max() ?? 1) * 1.15)
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
        for i in 0...5 {
            let x = maxX * Double(i) / 5, y = maxY * Double(i) / 5
            s += "<text x=\"\(px(x))\" y=\"\(h - bottom + 18)\" text-anchor=\"middle\">\(Int(x.rounded()))</text>\n"
            s += "<text x=\"\(left - 8)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", y))</text>\n"
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

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
