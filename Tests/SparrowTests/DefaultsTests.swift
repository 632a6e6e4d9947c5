import CSparrowABI
import SparrowRuntime
import Testing

/// The defaults a C program gets (`sparrow_*_default_params`, plain data in C) are the Swift API's,
/// and the header's version is the runtime's.
@Suite struct DefaultsTests {
    @Test func cDefaultsAreTheSwiftDefaults() {
        let c = sparrow_session_default_params()
        let swift = SessionOptions()
        let precision = TokenPrecision()
        #expect(c.token_full_threshold == precision.fullThreshold && c.token_low_threshold == precision.lowThreshold)
        #expect(precision.fullThreshold == TokenPrecision.defaultFullThreshold)
        #expect(c.background_upgrades == precision.upgradeInBackground)
        // Token-level precision `auto` is on by default in both (the measured best under a budget).
        #expect(c.precision_policy == SPARROW_PRECISION_TOKEN && swift.tokenPrecision == .automatic)
        #expect(
            Double(c.token_profile_tolerance) == TokenPrecision.automatic.profileTolerance.map { Double(Float($0)) })
        #expect(c.allow_skip == precision.allowSkip)
        #expect(Int(c.prefetch_depth) == swift.prefetchDepth)
        #expect(c.intra_layer_plan == swift.intraLayerPlan)
        #expect(c.cache_policy == SPARROW_CACHE_SCORE && swift.cachePolicy == .score)
        #expect(c.kv_type == SPARROW_KV_F32 && swift.kvType == .f32)
        #expect(c.io_backend == SPARROW_IO_AUTO && swift.io.mode == .auto)
    }

    @Test func headerVersionIsTheRuntimes() {
        #expect(String(cString: sparrow_version()) == sparrowVersion)
        #expect(SPARROW_VERSION_STRING == sparrowVersion)
    }
}
