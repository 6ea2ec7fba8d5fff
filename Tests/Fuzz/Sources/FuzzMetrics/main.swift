import FuzzSupport
import Foundation
import SiteFitReport

/// Any bytes as a `metrics.json`; what reads as one is rendered, report and charts, as `sitefit
/// report` would (the renderer must survive whatever the reader lets through).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(UnsafeBufferPointer(start: data, count: size))
    if let metrics = try? ReportWriter.readMetrics(data: bytes, url: URL(fileURLWithPath: "fuzz/metrics.json")) {
        _ = MarkdownReport.render(metrics)
        _ = ReportCharts.all(metrics)
    }
    return 0
}
