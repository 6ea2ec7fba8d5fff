import Foundation
import Testing
@testable import SiteFitCore
@testable import SiteFitNN

@Suite("Hostile checkpoints and safetensors are refused with messages that echo nothing of the file")
struct HostileCheckpointTests {
    static func checkpoint() -> [UInt8] {
        let mlp = MLP(MLPConfiguration(inputSize: 3, hiddenSizes: [4]))
        var random = RandomStream(seed: 9, "hostile")
        return Checkpoint.encode(PretrainedModel(network: mlp, parameters: mlp.initialParameters(random: &random),
                                                 standardizer: Standardizer(means: [1, 2, 3], standardDeviations: [1, 1, 2]),
                                                 columns: ["a", "b", "c"]))
    }

    static func tampered(_ change: (inout [NamedTensor], inout [String: String]) -> Void) throws -> [UInt8] {
        var (tensors, metadata) = try Safetensors.decode(checkpoint())
        change(&tensors, &metadata)
        return Safetensors.encode(tensors, metadata: metadata)
    }

    @Test("weights of 1e38, a standard deviation of 0, and widths of 1e9 are refused before anything is computed or allocated")
    func absurdValues() throws {
        let hugeWeight = try Self.tampered { tensors, _ in tensors[0].values[0] = 1e38 }
        let zeroSD = try Self.tampered { _, metadata in
            metadata["standardizer"] = #"{"means":[1,2,3],"standardDeviations":[1,0,2]}"#
        }
        let hugeWidths = try Self.tampered { _, metadata in
            metadata["model"] = metadata["model"]!.replacingOccurrences(of: #""hiddenSizes":[4]"#, with: #""hiddenSizes":[1000000000,1000000000]"#)
        }
        #expect(try Safetensors.decode(hugeWidths).metadata["model"]?.contains("1000000000") == true)
        for (bytes, problem) in [(hugeWeight, "beyond ±10000"), (zeroSD, "standard deviation"), (hugeWidths, "does not match")] {
            do {
                _ = try Checkpoint.decode(bytes, file: "x.safetensors")
                Issue.record("accepted: \(problem)")
            } catch {
                #expect(error.problem.contains(problem), "\(error.problem)")
            }
        }
    }

    @Test("a header length, a tensor name or a dtype from the file reaches an error only when it is a plain identifier")
    func nothingEchoed() throws {
        var garbage = [UInt8](repeating: 0x41, count: 64)  // "AAAA…" as a header length: 4.7e18
        garbage[0] = 0x7B
        do { _ = try Safetensors.decode(garbage); Issue.record("garbage decoded") } catch {
            #expect(!error.description.contains(where: \.isNumber) && !error.description.contains("AAAA"), "\(error.description)")
        }
        let hostileName = "\u{1B}[2J<script>"
        let blob = Safetensors.encode([NamedTensor(name: hostileName, shape: [1], values: [1])], dtype: "U32")
        do { _ = try Safetensors.decode(blob); Issue.record("U32 accepted") } catch {
            #expect(!error.description.contains("\u{1B}") && !error.description.contains("<script>"))
            #expect(error.description.contains("'U32'"))
        }
    }
}
