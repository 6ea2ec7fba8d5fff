import Foundation
import SiteFitNN
import SiteFitTransformer

/// Plain-text rendering of a checkpoint for `sitefit model inspect`.
enum CheckpointText {
    static func render(_ model: PretrainedModel<MLP>, notes: [String: String], file: String, bytes: Int) -> String {
        let c = model.network.configuration
        var out = "\(file): SiteFit checkpoint, \(bytes) bytes\n"
        out += "model: MLP \(c.widths.map(String.init).joined(separator: " → ")), activation \(c.activation.rawValue)"
        out += c.layerNorm ? ", LayerNorm" : ""
        out += c.dropout > 0 ? ", dropout \(c.dropout)" : ""
        out += "\nfeatures (\(model.columns.count)): \(model.columns.joined(separator: ", "))\n"
        for key in notes.keys.sorted() where !notes[key]!.isEmpty { out += "\(key): \(notes[key]!)\n" }
        return out + tensors(model.network.layout)
    }

    /// A transformer checkpoint: its shape, how many codes its vocabulary names (the list itself is
    /// in the metadata), its other notes and its tensors.
    static func render(_ model: PretrainedModel<Transformer>, vocabulary: [String], notes: [String: String], file: String, bytes: Int) -> String {
        let c = model.network.configuration
        var out = "\(file): SiteFit checkpoint, \(bytes) bytes\n"
        out += "model: transformer, \(c.layers) layers of width \(c.width), \(c.heads) heads, feed-forward \(c.feedForwardWidth), "
        out += "\(c.maxLength) codes per patient, \(c.timeBuckets) time buckets\n"
        out += "vocabulary: \(vocabulary.count) codes after padding, mask and unknown"
        out += vocabulary.isEmpty ? "\n" : " (\(vocabulary.prefix(5).joined(separator: ", "))\(vocabulary.count > 5 ? ", …" : ""))\n"
        for key in notes.keys.sorted() where !notes[key]!.isEmpty && !["vocabulary", "time_buckets", "model"].contains(key) {
            out += "\(key): \(notes[key]!)\n"
        }
        return out + tensors(model.network.layout)
    }

    /// The tensor table and the parameters by role.
    static func tensors(_ layout: ParameterLayout) -> String {
        let nameWidth = max(28, (layout.tensors.map(\.name.count).max() ?? 0) + 2)
        var out = "\n" + "tensor".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "shape".padding(toLength: 12, withPad: " ", startingAt: 0)
            + "role".padding(toLength: 14, withPad: " ", startingAt: 0) + "parameters\n"
        var byRole: [TensorRole: Int] = [:]
        var roles: [TensorRole] = []  // in order of first appearance in the layout
        for t in layout.tensors {
            if byRole[t.role] == nil { roles.append(t.role) }
            byRole[t.role, default: 0] += t.count
            out += t.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                + "(\(t.shape.map(String.init).joined(separator: ", ")))".padding(toLength: 12, withPad: " ", startingAt: 0)
                + t.role.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "%10d", t.count) + "\n"
        }
        let total = layout.count
        out += "\ntotal: \(total) parameters\n"
        for role in roles {
            let n = byRole[role, default: 0]
            out += "  \(role.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)) \(String(format: "%8d", n))  (\(String(format: "%.2f", 100 * Double(n) / Double(total))) %)\n"
        }
        return out
    }
}
