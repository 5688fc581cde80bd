import Coordinator
import Metrics
import Prometheus

/// swift-metrics into a Prometheus registry, with each family's `# HELP` line from
/// `CoordinatorMetrics.help` (Prometheus's own factory writes none). Buckets and removal are
/// its factory's.
struct PrometheusHelpFactory: MetricsFactory {
    let base: PrometheusMetricsFactory

    init(registry: PrometheusCollectorRegistry) { base = PrometheusMetricsFactory(registry: registry) }

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: CoordinatorMetrics.help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        base.registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        base.registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return base.registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return base.registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions,
                                                buckets: base.valueHistogramBuckets[label] ?? base.defaultValueHistogramBuckets)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        base.registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        base.registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions,
                                            buckets: base.durationHistogramBuckets[label] ?? base.defaultDurationHistogramBuckets)
    }

    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}
