/// Just enough JSON writing for `--status --json`: strings escaped, values in a fixed order.
public enum JSON {
    public indirect enum Value {
        case string(String)
        case number(Double)
        case integer(Int64)
        case bool(Bool)
        case null
        case array([Value])
        case object([(String, Value)])
    }

    public static func encode(_ value: Value) -> String {
        switch value {
        case .string(let text): return quote(text)
        case .number(let number):
            if number.isNaN || number.isInfinite { return "null" }
            return String((number * 1000).rounded() / 1000)
        case .integer(let number): return String(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(encode).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.map { quote($0.0) + ":" + encode($0.1) }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
