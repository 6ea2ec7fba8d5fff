import SiteFitNN

extension Transformer: CheckpointableModel {
    public var checkpointConfiguration: TransformerConfiguration { configuration }

    /// The transformer of a checkpoint's configuration, or nil when the configuration is not one
    /// SiteFit could have written: a hostile file must not divide by zero heads or make the reader
    /// allocate gigabytes before its tensors are compared with the layout.
    public init?(checkpointConfiguration c: TransformerConfiguration, inputSize: Int) {
        guard (1...1 << 20).contains(c.vocabularySize), c.vocabularySize > TransformerConfiguration.Token.firstCode,
              (1...4096).contains(c.timeBuckets), (1...4096).contains(c.maxLength), (1...4096).contains(c.width),
              (1...c.width).contains(c.heads), c.width % c.heads == 0, (0...48).contains(c.layers),
              (1...16384).contains(c.feedForwardWidth), inputSize == c.inputSize
        else { return nil }
        // Attention keeps heads × length² probabilities per patient and block: at most 2²² floats
        // (16 MiB) per patient, 64 times the benchmark's size.
        guard c.maxLength <= 1024, c.heads * c.maxLength * c.maxLength * max(c.layers, 1) <= 1 << 22 else { return nil }
        let embeddings = (c.vocabularySize + c.timeBuckets + c.maxLength + 2) * c.width
        let block = 4 * c.width * c.width + 2 * c.width * c.feedForwardWidth + c.feedForwardWidth + 9 * c.width
        guard embeddings + c.layers * block + 3 * c.width + 1 <= MLP.maximumCheckpointParameters else { return nil }
        self.init(c)
    }
}

/// A pretrained transformer with the vocabulary its code ids stand for, as a safetensors file:
/// SiteFit's checkpoint (tensors under their dotted keys; configuration, identity standardizer
/// and token columns in the metadata) plus `vocabulary`, the JSON list of code names whose k-th
/// entry is id k + 3, and `time_buckets`, the buckets' upper bounds in days (when the model's
/// time embedding has those buckets).
public enum TransformerCheckpoint {
    public static func encode(_ model: PretrainedModel<Transformer>, vocabulary: [String], notes: [String: String] = [:]) -> [UInt8] {
        var notes = notes
        notes["vocabulary"] = Checkpoint.json(vocabulary)
        // Written only when the model's buckets are these (a synthetic benchmark model's are not).
        if model.network.configuration.timeBuckets == timeBucketUpperDays.count + 1 {
            notes["time_buckets"] = Checkpoint.json(timeBucketUpperDays)
        }
        return Checkpoint.encode(model, notes: notes)
    }

    /// The buckets the token matrix uses (`CodeSequences.bucketUpperDays`, restated here so that
    /// the model does not depend on the EHR module; a test keeps the two equal).
    public static let timeBucketUpperDays = [0, 7, 30, 90, 180, 365, 730]

    /// The model, its vocabulary and the other notes; the vocabulary must name every code id once.
    public static func decode(_ bytes: [UInt8], file: String) throws(Checkpoint.Failure)
        -> (model: PretrainedModel<Transformer>, vocabulary: [String], notes: [String: String]) {
        let (model, notes) = try Checkpoint.decode(bytes, file: file, as: Transformer.self)
        guard let vocabulary: [String] = Checkpoint.parse(notes["vocabulary"]) else {
            throw Checkpoint.Failure(file: file, problem: "metadata 'vocabulary' (the code each id stands for) is missing or malformed")
        }
        guard vocabulary.count + TransformerConfiguration.Token.firstCode == model.network.configuration.vocabularySize else {
            throw Checkpoint.Failure(file: file, problem: "the vocabulary names \(vocabulary.count) codes; the model has "
                                     + "\(model.network.configuration.vocabularySize - TransformerConfiguration.Token.firstCode)")
        }
        guard Set(vocabulary).count == vocabulary.count, !vocabulary.contains(where: \.isEmpty) else {
            throw Checkpoint.Failure(file: file, problem: "the vocabulary names a code twice, or names an empty one")
        }
        if let text = notes["time_buckets"] {
            guard let buckets: [Int] = Checkpoint.parse(text), buckets == timeBucketUpperDays,
                  buckets.count + 1 == model.network.configuration.timeBuckets else {
                throw Checkpoint.Failure(file: file, problem: "metadata 'time_buckets' is not the buckets this SiteFit cuts histories into")
            }
        }
        // Token ids are read as they are: a standardizer other than the identity would turn them into other ids.
        guard model.standardizer.means.allSatisfy({ $0 == 0 }), model.standardizer.standardDeviations.allSatisfy({ $0 == 1 }) else {
            throw Checkpoint.Failure(file: file, problem: "a transformer's token columns are not standardised; its standardizer must be the identity")
        }
        return (model, vocabulary, notes.filter { $0.key != "vocabulary" && $0.key != "time_buckets" })
    }
}
