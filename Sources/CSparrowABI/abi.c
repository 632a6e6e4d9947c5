// The parts of the C interface that are plain data: version, status names, default parameters,
// and the thread-local last-error message. Everything else is implemented in Swift (SparrowC).
#include "include/sparrow_abi.h"
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[2048];

const char *sparrow_version(void) { return SPARROW_VERSION_STRING; }

const char *sparrow_last_error(void) { return last_error; }

void spabi_set_error(const char *message) {
    if (!message) {
        last_error[0] = 0;
        return;
    }
    size_t n = strlen(message);
    if (n >= sizeof last_error) {
        n = sizeof last_error - 1;
        while (n > 0 && ((unsigned char)message[n] & 0xC0) == 0x80) n--;  // not inside a character
    }
    memcpy(last_error, message, n);
    last_error[n] = 0;
}

const char *sparrow_status_name(sparrow_status status) {
    switch (status) {
    case SPARROW_OK: return "SPARROW_OK";
    case SPARROW_ERR_INVALID_ARGUMENT: return "SPARROW_ERR_INVALID_ARGUMENT";
    case SPARROW_ERR_INVALID_HANDLE: return "SPARROW_ERR_INVALID_HANDLE";
    case SPARROW_ERR_BUFFER_TOO_SMALL: return "SPARROW_ERR_BUFFER_TOO_SMALL";
    case SPARROW_ERR_IO: return "SPARROW_ERR_IO";
    case SPARROW_ERR_FORMAT: return "SPARROW_ERR_FORMAT";
    case SPARROW_ERR_UNSUPPORTED: return "SPARROW_ERR_UNSUPPORTED";
    case SPARROW_ERR_BUDGET: return "SPARROW_ERR_BUDGET";
    case SPARROW_ERR_CONTEXT_FULL: return "SPARROW_ERR_CONTEXT_FULL";
    case SPARROW_ERR_MODEL_MISMATCH: return "SPARROW_ERR_MODEL_MISMATCH";
    case SPARROW_ERR_NO_DATA: return "SPARROW_ERR_NO_DATA";
    case SPARROW_ERR_INTERNAL: return "SPARROW_ERR_INTERNAL";
    }
    return "SPARROW_ERR_UNKNOWN";
}

void sparrow_string_free(char *string) { free(string); }

sparrow_model_params sparrow_model_default_params(void) {
    sparrow_model_params p = {0};
    p.struct_size = sizeof p;
    p.verify_checksums = true;
    return p;
}

sparrow_session_params sparrow_session_default_params(void) {
    sparrow_session_params p = {0};
    p.struct_size = sizeof p;
    p.io_backend = SPARROW_IO_AUTO;
    p.cache_policy = SPARROW_CACHE_SCORE;
    p.precision_policy = SPARROW_PRECISION_TOKEN; /* TokenPrecision.automatic, measured best */
    p.kv_type = SPARROW_KV_F32;
    p.prefetch_depth = 1;
    /* TokenPrecision.defaultFullThreshold / defaultLowThreshold (SwiftAPITests keeps them equal). */
    p.token_full_threshold = 0.6f;
    p.token_low_threshold = 0.9f;
    p.low_bits = 0;
    p.allow_skip = true; /* TokenPrecision.defaultAllowSkip (DefaultsTests keeps them equal) */
    p.token_profile_tolerance = 0.05f; /* TokenPrecision.defaultTolerance */
    p.background_upgrades = true;
    p.intra_layer_plan = true;
    return p;
}

sparrow_sample_params sparrow_sample_default_params(void) {
    sparrow_sample_params p = {0};
    p.struct_size = sizeof p;
    p.temperature = 0;
    p.top_k = 0;
    p.top_p = 1;
    p.repetition_penalty = 1;
    p.repetition_window = 64;
    p.seed = 0;
    return p;
}

sparrow_generate_params sparrow_generate_default_params(void) {
    sparrow_generate_params p = {0};
    p.struct_size = sizeof p;
    p.max_tokens = 64;
    p.stop_at_eos = true;
    p.sample = sparrow_sample_default_params();
    return p;
}
