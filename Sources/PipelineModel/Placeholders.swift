import SeqDatabase
import SeqSystem

/// Fills `{placeholders}` in a step's argv from a job and its worker.
public struct Placeholders: Sendable {
    public var values: [String: String]

    public init(values: [String: String]) { self.values = values }

    /// What worker `worker` fills in: its device and ports, and with a job, the job's fields,
    /// id, run and account.
    public static func of(worker: Int, device: String, config: PipelineConfig, job: Job?) -> Placeholders {
        var values: [String: String] = [
            "worker": String(worker), "device": device,
            "appium_port": String(config.appiumPort(worker: worker)),
            "system_port": String(config.systemPort(worker: worker)),
            "system_port_end": String(config.systemPort(worker: worker) + config.systemPortStride - 1),
        ]
        if let job {
            for (key, value) in job.payload { values[key] = value }
            if let video = values["video"], values["video_path"] == nil { values["video_path"] = video }
            if let video = values["video_path"], values["video"] == nil { values["video"] = video }
            values["job_id"] = job.id
            values["attempt"] = String(max(job.runs, 1))
            values["account"] = job.account
        }
        return Placeholders(values: values)
    }

    /// What a device's own commands and URL may use, with worker 0's values: for checking
    /// them when the device is added.
    public static func example(device: String, config: PipelineConfig) -> Placeholders {
        of(worker: 0, device: device, config: config, job: nil)
    }

    /// Why `job` cannot run the steps (and the reset) of `config`: the first placeholder no
    /// value exists for, with the step; nil when every one is filled. Checked when jobs are
    /// added, so that a missing field is found then, not when the job fails at run time.
    public static func missing(for job: Job, config: PipelineConfig) -> String? {
        let values = of(worker: 0, device: "-", config: config, job: job)
        var lists: [(String, [String])] = config.steps.flatMap { step in [(step.name, step.run)] + (step.check.map { [(step.name + " check", $0)] } ?? []) }
        if let reset = config.reset { lists.append(("reset", reset)) }
        for (name, argv) in lists {
            do { _ = try values.fill(argv) } catch {
                return "step \(name): \(error.message); add the field to the job (--field KEY=VALUE, or a CSV column)"
            }
        }
        return nil
    }

    /// Every `{name}` replaced; `{{` and `}}` stand for braces.
    /// - Throws: `ConfigError` naming the placeholder no value exists for.
    public func fill(_ text: String) throws(ConfigError) -> String {
        var result = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            if character == "{", next < text.endIndex, text[next] == "{" {
                result.append("{")
                index = text.index(after: next)
                continue
            }
            if character == "}", next < text.endIndex, text[next] == "}" {
                result.append("}")
                index = text.index(after: next)
                continue
            }
            guard character == "{", let close = text[next...].firstIndex(of: "}") else {
                result.append(character)
                index = next
                continue
            }
            let name = String(text[next..<close])
            guard let value = values[name] else {
                throw ConfigError(message: "placeholder {\(name)} has no value (known: \(values.keys.sorted().joined(separator: ", ")))")
            }
            result += value
            index = text.index(after: close)
        }
        return result
    }

    public func fill(_ argv: [String]) throws(ConfigError) -> [String] {
        var result: [String] = []
        for argument in argv { result.append(try fill(argument)) }
        return result
    }
}
