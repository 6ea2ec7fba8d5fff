import Foundation
import SiteFitCore
import SiteFitNN

/// Code sequences drawn at random, for the benchmarks, the allocation check and the tests — not
/// patients: codes are uniform over the vocabulary, visits of one to six codes a few time buckets
/// apart, and the outcome is a logistic function of how many "risk" codes (the first eight real
/// ids) a patient has, so that a model has something to learn.
public enum SyntheticSequences {
    /// `patients` rows of `configuration.inputSize`; `fullLength` fills every position (the
    /// benchmark's stated size), otherwise lengths vary from a quarter of the maximum to all of it.
    public static func dataset(_ configuration: TransformerConfiguration, patients: Int, fullLength: Bool,
                               random: inout RandomStream) -> Dataset {
        let s = configuration.maxLength, firstCode = TransformerConfiguration.Token.firstCode
        let codes = configuration.vocabularySize - firstCode
        var features = [Float](repeating: 0, count: patients * 3 * s), labels = [Float](repeating: 0, count: patients)
        for p in 0..<patients {
            let length = fullLength ? s : max(1, s / 4 + random.int(below: s - s / 4 + 1))
            var risk = 0, segment = 0, bucket = configuration.timeBuckets - 1, visitLeft = 1 + random.int(below: 6)
            for t in 0..<length {
                let code = firstCode + random.int(below: codes)
                if code < firstCode + 8 { risk += 1 }
                let row = (p * s + t) * 3
                features[row] = Float(code)
                features[row + 1] = Float(bucket)
                features[row + 2] = Float(segment)
                visitLeft -= 1
                if visitLeft == 0 {
                    visitLeft = 1 + random.int(below: 6)
                    segment = 1 - segment
                    bucket = max(0, bucket - random.int(below: 3))
                }
            }
            let logit = 1.5 * Double(risk) - 1.5 * Double(length) * 8 / Double(max(codes, 8)) - 0.5
            labels[p] = random.bernoulli(1 / (1 + exp(-logit))) ? 1 : 0
        }
        return Dataset(features: features, labels: labels, columns: 3 * s)
    }
}
