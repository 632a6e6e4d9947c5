/*
 * sparrow.h — the C interface of Sparrow, a runtime for sparse Mixture-of-Experts language models
 * on machines with less memory than the model.
 *
 * Self-contained C11 (and C++ through extern "C"). Link with -lsparrow (pkg-config: sparrow).
 *
 * Conventions
 *   - Every function that can fail returns a sparrow_status; SPARROW_OK is 0. On failure,
 *     sparrow_last_error() returns a message for the calling thread.
 *   - Handles are opaque. Every entry point checks its handles: NULL, a handle already closed or
 *     freed, or a pointer that is not a handle is SPARROW_ERR_INVALID_HANDLE, never a crash.
 *   - Params structs start with `struct_size`, set by the *_default_params() functions; pass
 *     NULL for the defaults. A struct_size the library does not know is SPARROW_ERR_INVALID_ARGUMENT.
 *     Structs only grow, by appending fields: the library accepts the size of every release that
 *     shipped the struct and takes the fields a smaller one lacks from the defaults (0.1.0 is the
 *     first release, so today only the current sizes exist). It never reads past struct_size bytes.
 *   - Exported functions carry the ELF version node SPARROW_0.1.
 *     Later versions only append fields, so a program built against an older header keeps working.
 *   - Buffers are the caller's. A call that fills one takes its capacity and reports the size
 *     needed; too small is SPARROW_ERR_BUFFER_TOO_SMALL with the size still reported.
 *   - Strings the library allocates (the *_json functions) are freed with sparrow_string_free().
 *
 * Thread safety
 *   - A model may be shared by many sessions used on many threads at once.
 *   - A session is used by one thread at a time (different sessions: any threads).
 *   - sparrow_last_error() is per thread.
 *   - Closing a model while sessions of it are alive is allowed: the sessions keep it alive
 *     until the last one is freed.
 */
#ifndef SPARROW_H
#define SPARROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPARROW_VERSION_MAJOR 0
#define SPARROW_VERSION_MINOR 1
#define SPARROW_VERSION_PATCH 0
/** The version this header describes, "MAJOR.MINOR.PATCH". */
#define SPARROW_VERSION_STRING "0.1.0"
/** The same as one comparable number, MAJOR * 10000 + MINOR * 100 + PATCH (0.1.0 is 100). */
#define SPARROW_VERSION_NUMBER (SPARROW_VERSION_MAJOR * 10000 + SPARROW_VERSION_MINOR * 100 + SPARROW_VERSION_PATCH)
/** Whether this header is at least version MAJOR.MINOR.PATCH, for code that builds against several. */
#define SPARROW_VERSION_AT_LEAST(major, minor, patch) \
    (SPARROW_VERSION_NUMBER >= (major) * 10000 + (minor) * 100 + (patch))

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------------------------- */

/** What a call did. */
typedef enum sparrow_status {
    SPARROW_OK = 0,
    /** A NULL pointer where one is needed, a value out of range, an unknown struct_size. */
    SPARROW_ERR_INVALID_ARGUMENT = 1,
    /** NULL, closed, freed, or not a handle of this library. */
    SPARROW_ERR_INVALID_HANDLE = 2,
    /** The caller's buffer is too small; the size needed was reported. */
    SPARROW_ERR_BUFFER_TOO_SMALL = 3,
    /** Reading the model failed (missing file, I/O error, an expert that could not be loaded). */
    SPARROW_ERR_IO = 4,
    /** The file is not a valid Sparrow model (truncated, corrupt, checksum mismatch). */
    SPARROW_ERR_FORMAT = 5,
    /** The model or the request needs something this build does not support. */
    SPARROW_ERR_UNSUPPORTED = 6,
    /** The memory budget cannot hold what the session needs (the message states the minimum). */
    SPARROW_ERR_BUDGET = 7,
    /** The session's context is full; reset it or create one with a longer context. */
    SPARROW_ERR_CONTEXT_FULL = 8,
    /** A session used with a model it does not belong to. */
    SPARROW_ERR_MODEL_MISMATCH = 9,
    /** Nothing to read yet (e.g. logits before any evaluation). */
    SPARROW_ERR_NO_DATA = 10,
    /** A bug in Sparrow; the message says where. */
    SPARROW_ERR_INTERNAL = 99
} sparrow_status;

/** The library's version, "MAJOR.MINOR.PATCH" (static storage). */
const char *sparrow_version(void);

/** The message of the last failed call on this thread ("" when none). Valid until the next
 *  sparrow_* call on this thread; never NULL. */
const char *sparrow_last_error(void);

/** A short name of a status, e.g. "SPARROW_ERR_IO" (static storage; never NULL). */
const char *sparrow_status_name(sparrow_status status);

/** Frees a string returned by the library (NULL is ignored). */
void sparrow_string_free(char *string);

/* ---------------------------------------------------------------------------------------------
 * Handles and parameters
 * ------------------------------------------------------------------------------------------- */

/** An open model file (immutable; shareable across threads). */
typedef struct sparrow_model sparrow_model;
/** One sequence: KV cache, expert cache, position. One thread at a time. */
typedef struct sparrow_session sparrow_session;

/** How expert bytes are read from storage under a memory budget. */
typedef enum sparrow_io_backend {
    SPARROW_IO_AUTO = 0, /**< io_uring when the kernel allows it, else pread */
    SPARROW_IO_URING = 1,
    SPARROW_IO_PREAD = 2
} sparrow_io_backend;

/** Which cached expert is evicted when the expert cache is full. */
typedef enum sparrow_cache_policy {
    SPARROW_CACHE_LRU = 0,
    SPARROW_CACHE_LFU = 1,      /**< counts per expert over the session */
    SPARROW_CACHE_SCORE = 2,    /**< HybriMoE: decaying sum of routing weights; the default (best measured) */
    SPARROW_CACHE_DISTANCE = 3  /**< HOBBIT-style: frequency over layer distance */
} sparrow_cache_policy;

/** How the precision of each expert use is chosen. */
typedef enum sparrow_precision_policy {
    /** Every expert at `expert_bits` (0: the default level, see `expert_bits`). */
    SPARROW_PRECISION_FIXED = 0,
    /** HOBBIT token-level precision under a budget: an expert use that misses the cache is read
     *  at `expert_bits` if its unimportance (the gate weight ranked above it) is at most
     *  `token_full_threshold`, else at `low_bits`, and skipped above `token_low_threshold` with
     *  `allow_skip` (on in sparrow_session_default_params()). */
    SPARROW_PRECISION_TOKEN = 1
} sparrow_precision_policy;

/** Element type of the KV cache. */
typedef enum sparrow_kv_type {
    SPARROW_KV_F32 = 0, /**< exact */
    SPARROW_KV_F16 = 1  /**< half the memory */
} sparrow_kv_type;

/** Options for sparrow_model_open. */
typedef struct sparrow_model_params {
    size_t struct_size;
    /** Check every dense tensor's checksum at open (expert records are checked when loaded). */
    bool verify_checksums;
} sparrow_model_params;

/** Options for sparrow_session_create. Zero means "the default" for every numeric field. */
typedef struct sparrow_session_params {
    size_t struct_size;
    /** Bytes the whole process may hold while the session runs: dense weights, KV cache and
     *  scratch stay resident, experts stream from storage into a cache filling the rest.
     *  0: no budget (experts are read through the memory mapping). A budget above what the model
     *  can use is capped (the expert cache never holds more than every expert). Counted from the
     *  session's creation on, including what other sessions hold then: several sessions in one
     *  process each need a budget above what is already resident (docs/CACHE.md). */
    uint64_t memory_budget;
    /** Compute threads (0: one per core; more than 8 per core: SPARROW_ERR_INVALID_ARGUMENT). */
    int32_t threads;
    /** Most tokens the session holds (0: the model's limit, at most 8192; above the model's
     *  max_position_embeddings: SPARROW_ERR_INVALID_ARGUMENT). */
    int32_t context_length;
    /** Most tokens evaluated in one batched step (0: 64; held to the context length). */
    int32_t batch_size;
    /** Stored expert precision to run at, in bits (0: the highest stored level, or under a budget
     *  whose cache cannot hold every expert at it the stored 4-bit level). */
    int32_t expert_bits;
    sparrow_io_backend io_backend;
    sparrow_cache_policy cache_policy;
    /** How each expert use's precision is chosen. sparrow_session_default_params():
     *  SPARROW_PRECISION_TOKEN with token_profile_tolerance 0.05 (the measured best under a budget;
     *  it acts only when the expert cache cannot hold every expert at full precision). */
    sparrow_precision_policy precision_policy;
    sparrow_kv_type kv_type;
    /** Under a budget: layers ahead whose experts are predicted and read early (0–3; 0: off;
     *  sparrow_session_default_params(): 1). */
    int32_t prefetch_depth;
    /** SPARROW_PRECISION_TOKEN: thresholds (defaults 0.6 and 0.9), the low level in bits (0: the
     *  lowest stored), and whether uses above the second threshold that miss the cache are skipped
     *  (default true: the measured best). */
    float token_full_threshold;
    float token_low_threshold;
    int32_t low_bits;
    bool allow_skip;
    /** SPARROW_PRECISION_TOKEN: > 0 replaces both thresholds by those the model's profile
     *  (MODEL.spw.profile.json, from `sparrow profile`) gives for this relative change of a MoE
     *  output (0.05 is the CLI's `auto`); without a profile the thresholds above stay. 0: off. */
    float token_profile_tolerance;
    /** SPARROW_PRECISION_TOKEN: complete downgraded cached experts while the I/O lane is idle
     *  (default true). */
    bool background_upgrades;
    /** Under a budget: order each layer's reads and compute by the intra-layer plan (measured
     *  bandwidth and compute rate; default true). false: the router's order. */
    bool intra_layer_plan;
} sparrow_session_params;

/** Options for choosing a token from logits. Defaults: greedy. */
typedef struct sparrow_sample_params {
    size_t struct_size;
    /** 0: greedy (argmax). */
    float temperature;
    /** Keep the k most likely tokens (0: all). */
    int32_t top_k;
    /** Keep the smallest set reaching this probability (1: all); in (0, 1]. */
    float top_p;
    /** Penalise tokens seen in the last `repetition_window` tokens (1: off); > 0. */
    float repetition_penalty;
    int32_t repetition_window;
    /** Same seed, options and logits: same tokens. */
    uint64_t seed;
} sparrow_sample_params;

/** Options for sparrow_generate. */
typedef struct sparrow_generate_params {
    size_t struct_size;
    /** Tokens to generate at most. */
    int32_t max_tokens;
    /** Stop after an end-of-sequence token. */
    bool stop_at_eos;
    sparrow_sample_params sample;
} sparrow_generate_params;

sparrow_model_params sparrow_model_default_params(void);
sparrow_session_params sparrow_session_default_params(void);
sparrow_sample_params sparrow_sample_default_params(void);
sparrow_generate_params sparrow_generate_default_params(void);

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------- */

/** Facts about an open model. */
typedef struct sparrow_model_info {
    size_t struct_size;
    int32_t vocab_size;
    int32_t layer_count;
    int32_t hidden_size;
    int32_t expert_count;
    int32_t experts_per_token;
    /** Longest context the model was trained for. */
    int32_t max_context;
    /** Stored expert levels in bits, lowest first (e.g. 2, 4, 8); level_count of them. */
    int32_t level_count;
    int32_t level_bits[8];
    uint64_t file_bytes;
    uint64_t dense_bytes;
    uint64_t expert_bytes;
    /** Sessions created from this handle and not yet freed. */
    int32_t live_sessions;
} sparrow_model_info;

/** Opens a .spw file (made by `sparrow convert`). `params` may be NULL. On success *model is a
 *  new handle, closed with sparrow_model_close; on failure *model is NULL. */
sparrow_status sparrow_model_open(const char *path, const sparrow_model_params *params, sparrow_model **model);

/** Closes a model handle. Sessions of it keep working until freed. */
sparrow_status sparrow_model_close(sparrow_model *model);

/** Fills `info` (set info->struct_size = sizeof *info first). */
sparrow_status sparrow_model_get_info(const sparrow_model *model, sparrow_model_info *info);

/** The model's facts and live sessions as a JSON object; free *json with sparrow_string_free. */
sparrow_status sparrow_model_info_json(const sparrow_model *model, char **json);

/** Token ids of `text` (`length` bytes of UTF-8; special tokens written in the text are
 *  recognised; a beginning-of-sequence token is added when the model asks for one). Writes up to
 *  `capacity` ids to `tokens` (may be NULL when capacity is 0) and the number needed to *count. */
sparrow_status sparrow_tokenize(
    const sparrow_model *model, const char *text, size_t length, int32_t *tokens, size_t capacity, size_t *count);

/** The text of `count` token ids, NUL-terminated, into `text` (`capacity` bytes, may be NULL when
 *  capacity is 0); *length receives its length without the NUL. Bytes that are not valid UTF-8
 *  become U+FFFD. */
sparrow_status sparrow_detokenize(
    const sparrow_model *model, const int32_t *tokens, size_t count, char *text, size_t capacity, size_t *length);

/* ---------------------------------------------------------------------------------------------
 * Sessions
 * ------------------------------------------------------------------------------------------- */

/** Creates a session of `model`. `params` may be NULL. A budget too small for the model is
 *  SPARROW_ERR_BUDGET with the minimum in the message. Free with sparrow_session_free. */
sparrow_status sparrow_session_create(
    sparrow_model *model, const sparrow_session_params *params, sparrow_session **session);

/** Frees a session (its memory, expert cache and reads in flight). */
sparrow_status sparrow_session_free(sparrow_session *session);

/** Forgets every token evaluated (the caches are kept). */
sparrow_status sparrow_session_reset(sparrow_session *session);

/** Evaluates `count` tokens after those already in the session; the logits of the last one can
 *  then be read with sparrow_session_logits. */
sparrow_status sparrow_session_evaluate(sparrow_session *session, const int32_t *tokens, size_t count);

/** Makes `destination` continue from where `source` is: its tokens (as its KV cache holds them)
 *  and last logits — e.g. a shared prompt evaluated once. Both must be sessions of the same model
 *  (else SPARROW_ERR_MODEL_MISMATCH) with the same kv_type, and destination's context must hold
 *  source's tokens. */
sparrow_status sparrow_session_copy_state(sparrow_session *destination, const sparrow_session *source);

/** Copies the last evaluated token's logits (vocab_size floats) into `logits`; *count receives
 *  vocab_size. SPARROW_ERR_NO_DATA before any evaluation. */
sparrow_status sparrow_session_logits(sparrow_session *session, float *logits, size_t capacity, size_t *count);

/** Chooses the next token from the last logits (does not evaluate it). `params` may be NULL
 *  (greedy). The session's random state advances (seeded at the first call after create/reset). */
sparrow_status sparrow_session_sample(sparrow_session *session, const sparrow_sample_params *params, int32_t *token);

/** Called for each generated token with its id and its text (`length` bytes, whole UTF-8
 *  characters: bytes of a character split over tokens arrive with its last token). Return false to
 *  stop generating. */
typedef bool (*sparrow_token_callback)(int32_t token, const char *text, size_t length, void *user_data);

/** Timing of one generation. */
typedef struct sparrow_generation_stats {
    size_t struct_size;
    int32_t prompt_tokens;
    int32_t generated_tokens;
    double prompt_seconds;
    double decode_seconds;
} sparrow_generation_stats;

/** Evaluates `prompt` after the session's tokens, then generates up to params->max_tokens tokens,
 *  calling `callback` (may be NULL) for each on this thread. `params` may be NULL (64 greedy
 *  tokens, stopping at end of sequence). `stats` may be NULL (else set its struct_size first).
 *  Stopping by the callback is SPARROW_OK. */
sparrow_status sparrow_generate(
    sparrow_session *session, const int32_t *prompt, size_t prompt_count, const sparrow_generate_params *params,
    sparrow_token_callback callback, void *user_data, sparrow_generation_stats *stats);

/** What a session did so far. */
typedef struct sparrow_session_stats {
    size_t struct_size;
    /** Tokens in the session, and its capacity. */
    int32_t position;
    int32_t context_length;
    int32_t threads;
    int32_t expert_bits;
    /** The memory budget (0: none) and the process's peak resident memory so far, in bytes. */
    uint64_t memory_budget;
    uint64_t peak_rss;
    /** Expert cache (all zero without a budget). */
    int32_t cache_slots;
    uint64_t cache_slot_bytes;
    uint64_t cache_hits;
    uint64_t cache_misses;
    uint64_t cache_evictions;
    uint64_t bytes_read;
    /** Seconds the compute thread waited for expert reads. */
    double stall_seconds;
} sparrow_session_stats;

/** Fills `stats` (set stats->struct_size = sizeof *stats first). */
sparrow_status sparrow_session_get_stats(const sparrow_session *session, sparrow_session_stats *stats);

/** The session's statistics as a JSON object (the struct's fields plus the I/O backend and cache
 *  policy); free *json with sparrow_string_free. */
sparrow_status sparrow_session_stats_json(const sparrow_session *session, char **json);

#ifdef __cplusplus
}
#endif

#endif /* SPARROW_H */
