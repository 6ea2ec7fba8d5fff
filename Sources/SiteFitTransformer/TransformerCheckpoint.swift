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
        let embeddings = (c.vocabularySize + c.timeBuckets + c.maxLength + 2) * c.width
        let block = 4 * c.width * c.width + 2 * c.width * c.feedForwardWidth + c.feedForwardWidth + 9 * c.width
        guard embeddings + c.layers * block + 3 * c.width + 1 <= MLP.maximumCheckpointParameters else { return nil }
        self.init(c)
    }
}

/// A pretrained transformer with the vocabulary its code ids stand for, as a safetensors file:
/// SiteFit's checkpoint (tensors under their dotted keys; configuration, identity standardizer
/// and token columns in the metadata) plus `vocabulary`, the JSON list of code names whose k-th
/// entry is id k + 3, and `time_buckets`, the buckets' upper bounds in days.
public enum TransformerCheckpoint {
    public static func encode(_ model: PretrainedModel<Transformer>, vocabulary: [String], notes: [String: String] = [:]) -> [UInt8] {
        var notes = notes
        notes["vocabulary"] = Checkpoint.json(vocabulary)
        notes["time_buckets"] = Checkpoint.json(timeBucketUpperDays)
        return Checkpoint.encode(model, notes: notes)
    }

    /// The buckets the token matrix uses (`CodeSequences.bucketUpperDays`, restated here so that
    /// the model does not depend on the EHR module; a test keeps the two equal).
    public static let timeBucketUpperDays = [0, 7, 30, 90, 180, 365, 730]

    /// The model, its vocabulary and the other notes; the vocabulary must name every code id.
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
        return (model, vocabulary, notes.filter { $0.key != "vocabulary" && $0.key != "time_buckets" })
    }
}
