import PipelineStore
import PipelineModel
import SeqDatabase
import SeqGuard
import SeqSystem

// GET /metrics: the dashboard's figures in the Prometheus text format (version 0.0.4), for
// the monitoring people already run.
extension Dashboard {
    static let metricsType = "text/plain; version=0.0.4; charset=utf-8"

    /// The family that says whether the store answered this scrape.
    static func storeUp(_ up: Bool) -> String {
        "# HELP seqpipe_store_up 1 when the store answered this scrape, 0 when it could not be reached.\n# TYPE seqpipe_store_up gauge\nseqpipe_store_up \(up ? 1 : 0)\n"
    }

    func metrics() throws(StoreError) -> String {
        let now = try store.currentTime()
        let counts = try store.jobCounts()
        var text = Self.storeUp(true)
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples {
                let labels = sample.labels.isEmpty ? "" : "{" + PrometheusText.labels(sample.labels) + "}"
                text += "\(name)\(labels) \(Self.sampleText(sample.value))\n"
            }
        }
        family("seqpipe_jobs", "gauge", "Jobs in the store by status.",
               JobStatus.allCases.map { status in ([("status", status.rawValue)], Double(counts[status] ?? 0)) })
        let series = try Throughput.series(store: store, minutes: 60, now: now)
        let perMinute = try Throughput.finishedPerMinute(store: store, now: now)
        family("seqpipe_finished_last_hour", "gauge", "Job runs that ended in the last hour, by outcome.",
               Throughput.outcomeNames.map { outcome in ([("outcome", outcome)], Double(series.reduce(0) { $0 + ($1.counts[outcome] ?? 0) })) })
        family("seqpipe_finished_per_minute", "gauge", "Jobs finished (success or failed) per minute over the last 15 minutes.",
               [([], perMinute)])
        let devices = try store.devices()
        family("seqpipe_device_healthy", "gauge", "1 when the device answered its last health check.",
               devices.map { ([("device", $0.name), ("host", $0.host)], $0.healthy ? 1 : 0) })
        family("seqpipe_device_cooldown_seconds", "gauge", "Seconds left of the device's cooldown or hold (0: none).",
               devices.map { ([("device", $0.name), ("host", $0.host)], max(0, ($0.cooldownUntil ?? now) - now)) })
        family("seqpipe_device_response_seconds", "gauge", "The device's last measured response time.",
               devices.compactMap { device in device.responseMilliseconds.map { ([("device", device.name), ("host", device.host)], Double($0) / 1000) } })
        let ages = try store.queueAges(since: now - 3600)
        family("seqpipe_queue_oldest_age_seconds", "gauge", "Age of the oldest job waiting (0: none).",
               [([], max(0, ages.oldestWaiting.map { now - $0 } ?? 0))])
        family("seqpipe_claim_wait_seconds", "gauge", "Mean time from a job's creation to its latest claim, for claims in the last hour.",
               [([], ages.meanClaimWait ?? 0)])
        family("seqpipe_alerts", "gauge", "Alerts raised and not cleared.", [([], Double(try store.alerts().count))])
        let hosts = try store.hosts()
        family("seqpipe_orchestrator_up", "gauge", "1 while the host's orchestrator runs and holds its lease.",
               hosts.map { ([("host", $0.name)], $0.state == .running && ($0.leaseUntil ?? now) >= now ? 1 : 0) })
        family("seqpipe_orchestrator_heartbeat_timestamp_seconds", "gauge", "When the host's orchestrator last renewed its lease (seconds since the epoch).",
               hosts.compactMap { host in host.beatAt.map { ([("host", host.name)], $0.seconds) } })
        text += Self.counterFamilies(try store.counterSamples())
        return text
    }

    /// The stored counts as counter and histogram families: a histogram's buckets made
    /// cumulative, with `+Inf`, `_sum` and `_count` per label set.
    static func counterFamilies(_ samples: [CounterSample]) -> String {
        var text = ""
        let byFamily = Dictionary(grouping: samples, by: \.family)
        for family in CounterFamily.all {
            guard let rows = byFamily[family.name], !rows.isEmpty else { continue }
            text += "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) \(family.isHistogram ? "histogram" : "counter")\n"
            for (labels, group) in Dictionary(grouping: rows, by: \.labels).sorted(by: { $0.key < $1.key }) {
                let set = labels.isEmpty ? "" : "{\(labels)}"
                guard let bounds = family.bounds else {
                    text += "\(family.name)\(set) \(group.reduce(0) { $0 + $1.count })\n"
                    continue
                }
                let separator = labels.isEmpty ? "" : ","
                var cumulative: Int64 = 0
                for (index, bound) in (bounds.map { sampleText($0) } + ["+Inf"]).enumerated() {
                    cumulative += group.filter { $0.bucket == index }.reduce(0) { $0 + $1.count }
                    text += "\(family.name)_bucket{\(labels)\(separator)le=\"\(bound)\"} \(cumulative)\n"
                }
                text += "\(family.name)_sum\(set) \(sampleText(group.reduce(0) { $0 + $1.sum }))\n"
                text += "\(family.name)_count\(set) \(cumulative)\n"
            }
        }
        return text
    }

    /// A sample's value: whole numbers without a fraction.
    static func sampleText(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
