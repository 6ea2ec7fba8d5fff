import SiteFitNN

/// Shape of an encoder over each patient's sequence of medical codes: code, time, segment and
/// position embeddings, `layers` pre-LayerNorm encoder blocks, a masked mean pool and one logit.
///
/// Input rows: each patient is `maxLength` tokens of three floats, token-major —
/// (code id, time bucket, segment) for token 0, then token 1, … — so that a batch of B patients is
/// also B·maxLength token rows of three. Code 0 is padding (never attended to, not pooled), 1 the
/// mask token of masked-code pretraining, 2 a code outside the vocabulary; real codes start at 3.
/// Segments alternate 0/1 from one visit to the next (BEHRT's visit grouping).
public struct TransformerConfiguration: Sendable, Equatable, Hashable, Codable {
    /// Code ids, the three reserved ones included.
    public var vocabularySize: Int
    /// Buckets of days before the index date.
    public var timeBuckets: Int
    /// Tokens per patient (the most recent events are kept).
    public var maxLength: Int
    public var width: Int
    public var heads: Int
    public var layers: Int
    public var feedForwardWidth: Int

    public init(vocabularySize: Int, timeBuckets: Int, maxLength: Int, width: Int, heads: Int, layers: Int, feedForwardWidth: Int? = nil) {
        precondition(vocabularySize > Token.firstCode && timeBuckets >= 1 && maxLength >= 1 && layers >= 0)
        precondition(heads >= 1 && width % heads == 0, "the width must divide into heads")
        self.vocabularySize = vocabularySize
        self.timeBuckets = timeBuckets
        self.maxLength = maxLength
        self.width = width
        self.heads = heads
        self.layers = layers
        self.feedForwardWidth = feedForwardWidth ?? 4 * width
    }

    public var headWidth: Int { width / heads }
    /// Floats per patient row: three per token.
    public var inputSize: Int { 3 * maxLength }

    /// The reserved code ids.
    public enum Token {
        public static let padding = 0, mask = 1, unknown = 2, firstCode = 3
    }
}

/// Tensors a fine-tuning mode adds to the pretrained transformer; all start as the identity change.
public struct TransformerExtensions: Sendable, Equatable, Hashable, Codable {
    /// LoRA (Hu et al., arXiv:2106.09685) on the fused query/key/value projection and the attention
    /// output projection: rank and α.
    public var lora: (rank: Int, alpha: Double)? {
        get { loraRank.map { ($0, loraAlpha) } }
        set { loraRank = newValue?.rank; loraAlpha = newValue?.alpha ?? 0 }
    }
    var loraRank: Int?
    var loraAlpha: Double
    /// Houlsby adapters (arXiv:1902.00751) after the attention and the feed-forward sub-layers: the bottleneck.
    public var adapterBottleneck: Int?
    /// (IA)³ (Liu et al., arXiv:2205.05638): learned rescaling of keys, values and the feed-forward activations.
    public var ia3: Bool

    public init(lora: (rank: Int, alpha: Double)? = nil, adapterBottleneck: Int? = nil, ia3: Bool = false) {
        loraRank = lora?.rank
        loraAlpha = lora?.alpha ?? 0
        self.adapterBottleneck = adapterBottleneck
        self.ia3 = ia3
    }

    /// The pretrained model, nothing added.
    public static let none = TransformerExtensions()
}
