/// Rows of cells in aligned columns, two spaces apart; the last cell of a row is not padded.
/// The first row (the header) sets how many columns are aligned.
public enum TextTable {
    public static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = first.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
        }
        var text = ""
        for row in rows {
            for (index, cell) in row.enumerated() {
                if index > 0 { text += "  " }
                text += cell
                if index < row.count - 1, index < widths.count { text += String(repeating: " ", count: widths[index] - cell.count) }
            }
            text += "\n"
        }
        return text
    }
}
