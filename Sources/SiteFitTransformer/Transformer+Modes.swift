import SiteFitNN
import SiteFitTuning

extension FineTuningMode {
    /// The transformer an arm of this mode trains: `model` with the mode's tensors added (LoRA on
    /// the attention projections, adapters after attention and feed-forward, (IA)³ on keys, values
    /// and feed-forward activations), all starting as the identity change. Which tensors train is
    /// `selection(for:)` on the result, by role, exactly as for the MLP: BitFit takes every bias
    /// (query/key/value, output, feed-forward, LayerNorm β, head), head the head.
    public func transformer(extending model: Transformer, settings values: ModeSettingValues? = nil) -> Transformer {
        let v = values ?? resolved()
        switch name {
        case FineTuningMode.lora.name:
            return model.extended(TransformerExtensions(lora: (rank: v.integer("rank"), alpha: v.number("alpha"))))
        case FineTuningMode.adapter.name:
            return model.extended(TransformerExtensions(adapterBottleneck: v.integer("bottleneck")))
        case FineTuningMode.ia3.name:
            return model.extended(TransformerExtensions(ia3: true))
        default:
            return model.extended(.none)
        }
    }

    /// Why the transformer cannot take this mode with these settings; nil when it can. LoRA's
    /// `layers` names the MLP's Linear layers and has no meaning here.
    public func transformerProblem(settings values: ModeSettingValues) -> String? {
        if name == FineTuningMode.lora.name, values.layers("layers") != nil {
            return "LoRA's 'layers' picks MLP layers; on the transformer LoRA goes on every attention projection"
        }
        return nil
    }
}
