// Every entry point of Include/sparrow.h, with every bad input the header promises to survive:
// NULL handles and buffers, buffers too small, wrong struct_size, closed handles, a session of
// another model. Built by Tests/C/run.sh with -Wall -Wextra -Werror -fsanitize=address,undefined.
//   api_test MODEL.spw
#define _POSIX_C_SOURCE 200809L  // mkstemp, fdopen
#define _DEFAULT_SOURCE
#include <sparrow.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, sparrow_last_error());                                            \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

/// A call that must fail with `status` and leave a message.
#define EXPECT_FAIL(call, status)                                                            \
    do {                                                                                     \
        sparrow_status s_ = (call);                                                          \
        if (s_ != (status) || sparrow_last_error()[0] == 0) {                                \
            fprintf(stderr, "%s:%d: %s returned %s, wanted %s (message: '%s')\n", __FILE__,   \
                    __LINE__, #call, sparrow_status_name(s_), sparrow_status_name(status),   \
                    sparrow_last_error());                                                   \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#define EXPECT_OK(call)                                                                      \
    do {                                                                                     \
        sparrow_status s_ = (call);                                                          \
        if (s_ != SPARROW_OK) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,         \
                    sparrow_status_name(s_), sparrow_last_error());                          \
            failures++;                                                                      \
        } else if (sparrow_last_error()[0] != 0) {                                           \
            fprintf(stderr, "%s:%d: %s succeeded but left an error message\n", __FILE__,     \
                    __LINE__, #call);                                                        \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

typedef struct {
    int calls;
    int stop_after;
    char text[4096];
    size_t length;
} collector;

static bool collect(int32_t token, const char *text, size_t length, void *user_data) {
    collector *c = user_data;
    (void)token;
    if (c->length + length < sizeof c->text) {
        memcpy(c->text + c->length, text, length);
        c->length += length;
        c->text[c->length] = 0;
    }
    c->calls++;
    return c->stop_after == 0 || c->calls < c->stop_after;
}

static void test_basics(void) {
    CHECK(strcmp(sparrow_version(), SPARROW_VERSION_STRING) == 0);
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", SPARROW_VERSION_MAJOR, SPARROW_VERSION_MINOR, SPARROW_VERSION_PATCH);
    CHECK(strcmp(version, SPARROW_VERSION_STRING) == 0);
    CHECK(SPARROW_VERSION_NUMBER == SPARROW_VERSION_MAJOR * 10000 + SPARROW_VERSION_MINOR * 100 + SPARROW_VERSION_PATCH);
    CHECK(SPARROW_VERSION_AT_LEAST(0, 1, 0) && SPARROW_VERSION_AT_LEAST(0, 0, 9) && !SPARROW_VERSION_AT_LEAST(99, 0, 0));
    CHECK(sparrow_last_error() != NULL);
    CHECK(strcmp(sparrow_status_name(SPARROW_ERR_BUDGET), "SPARROW_ERR_BUDGET") == 0);
    CHECK(strcmp(sparrow_status_name((sparrow_status)12345), "SPARROW_ERR_UNKNOWN") == 0);
    sparrow_string_free(NULL);
    sparrow_model_params mp = sparrow_model_default_params();
    CHECK(mp.struct_size == sizeof mp && mp.verify_checksums);
    sparrow_session_params sp = sparrow_session_default_params();
    CHECK(sp.struct_size == sizeof sp && sp.memory_budget == 0);
    sparrow_generate_params gp = sparrow_generate_default_params();
    CHECK(gp.struct_size == sizeof gp && gp.sample.struct_size == sizeof gp.sample && gp.max_tokens > 0);
}

static void test_bad_open(const char *model_path) {
    sparrow_model *m = (sparrow_model *)0x1;
    EXPECT_FAIL(sparrow_model_open(NULL, NULL, &m), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(m == NULL);
    EXPECT_FAIL(sparrow_model_open(model_path, NULL, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_model_open("/nonexistent/model.spw", NULL, &m), SPARROW_ERR_IO);
    CHECK(m == NULL);
    EXPECT_FAIL(sparrow_model_open("/etc/hostname", NULL, &m), SPARROW_ERR_FORMAT);
    sparrow_model_params mp = sparrow_model_default_params();
    // A path whose bytes are not UTF-8 names no other file; a FIFO does not block the open.
    sparrow_model *none = NULL;
    EXPECT_FAIL(sparrow_model_open("/tmp/\xff\xfe.spw", NULL, &none), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "UTF-8") != NULL);
    char fifo[] = "/tmp/sparrow-api-fifo-XXXXXX";
    int fifo_fd = mkstemp(fifo);
    CHECK(fifo_fd >= 0);
    close(fifo_fd);
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(sparrow_model_open(fifo, NULL, &none) != SPARROW_OK && none == NULL);
    unlink(fifo);
    mp.struct_size = 3;
    EXPECT_FAIL(sparrow_model_open(model_path, &mp, &m), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "struct_size") != NULL);
    // A truncated copy of the model.
    char truncated[] = "/tmp/sparrow-api-test-XXXXXX";
    int fd = mkstemp(truncated);
    CHECK(fd >= 0);
    FILE *in = fopen(model_path, "rb");
    FILE *out = fdopen(fd, "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    EXPECT_FAIL(sparrow_model_open(truncated, NULL, &m), SPARROW_ERR_FORMAT);
    remove(truncated);
}

static void test_null_handles(void) {
    sparrow_model_info info = {.struct_size = sizeof info};
    sparrow_session_stats stats = {.struct_size = sizeof stats};
    char *json = (char *)0x1;
    int32_t tokens[4] = {1, 2, 3, 4};
    size_t count = 0;
    float logits[4];
    sparrow_session *s = (sparrow_session *)0x1;
    EXPECT_FAIL(sparrow_model_close(NULL), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_model_get_info(NULL, &info), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_model_info_json(NULL, &json), SPARROW_ERR_INVALID_HANDLE);
    CHECK(json == NULL);
    EXPECT_FAIL(sparrow_tokenize(NULL, "a", 1, tokens, 4, &count), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_detokenize(NULL, tokens, 1, (char *)logits, sizeof logits, &count), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_create(NULL, NULL, &s), SPARROW_ERR_INVALID_HANDLE);
    CHECK(s == NULL);
    EXPECT_FAIL(sparrow_session_free(NULL), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_reset(NULL), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_evaluate(NULL, tokens, 1), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_copy_state(NULL, NULL), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_logits(NULL, logits, 4, &count), SPARROW_ERR_INVALID_HANDLE);
    int32_t token;
    EXPECT_FAIL(sparrow_session_sample(NULL, NULL, &token), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_generate(NULL, tokens, 1, NULL, NULL, NULL, NULL), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_get_stats(NULL, &stats), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_stats_json(NULL, &json), SPARROW_ERR_INVALID_HANDLE);
    // A pointer that is not a handle at all, and a model handle passed as a session.
    int not_a_handle = 0;
    EXPECT_FAIL(sparrow_session_reset((sparrow_session *)&not_a_handle), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_model_close((sparrow_model *)&not_a_handle), SPARROW_ERR_INVALID_HANDLE);
}

static void test_model(sparrow_model *m) {
    sparrow_model_info info = {.struct_size = sizeof info};
    EXPECT_OK(sparrow_model_get_info(m, &info));
    CHECK(info.vocab_size > 0 && info.layer_count > 0 && info.expert_count > 0);
    CHECK(info.level_count >= 1 && info.level_count <= 8 && info.level_bits[0] > 0);
    CHECK(info.file_bytes >= info.dense_bytes + info.expert_bytes && info.expert_bytes > 0);
    CHECK(info.live_sessions == 0);
    sparrow_model_info bad = {.struct_size = sizeof bad - 8};
    EXPECT_FAIL(sparrow_model_get_info(m, &bad), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_model_get_info(m, NULL), SPARROW_ERR_INVALID_ARGUMENT);

    char *json = NULL;
    EXPECT_OK(sparrow_model_info_json(m, &json));
    CHECK(json != NULL && strstr(json, "\"expertBits\"") != NULL && strstr(json, "\"liveSessions\":0") != NULL);
    sparrow_string_free(json);
    EXPECT_FAIL(sparrow_model_info_json(m, NULL), SPARROW_ERR_INVALID_ARGUMENT);

    // Tokenize: size query, too small, exact; invalid UTF-8; NULLs.
    const char *text = "Hello, world! Sparrow streams experts.";
    size_t needed = 0;
    EXPECT_FAIL(sparrow_tokenize(m, text, strlen(text), NULL, 0, &needed), SPARROW_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 2);
    int32_t *tokens = calloc(needed, sizeof *tokens);
    size_t got = 0;
    EXPECT_FAIL(sparrow_tokenize(m, text, strlen(text), tokens, needed - 1, &got), SPARROW_ERR_BUFFER_TOO_SMALL);
    CHECK(got == needed);
    EXPECT_OK(sparrow_tokenize(m, text, strlen(text), tokens, needed, &got));
    CHECK(got == needed);
    EXPECT_FAIL(sparrow_tokenize(m, "\xff\xfe", 2, tokens, needed, &got), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_tokenize(m, NULL, 3, tokens, needed, &got), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_tokenize(m, text, 3, NULL, 5, &got), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_tokenize(m, text, 3, tokens, needed, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    size_t zero = 99;
    EXPECT_OK(sparrow_tokenize(m, "", 0, NULL, 0, &zero));
    // Lengths above PTRDIFF_MAX are errors that say so; a SIZE_MAX capacity is "large enough".
    EXPECT_FAIL(sparrow_tokenize(m, text, SIZE_MAX, tokens, needed, &got), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "PTRDIFF_MAX") != NULL);
    EXPECT_OK(sparrow_tokenize(m, text, strlen(text), tokens, SIZE_MAX, &got));
    EXPECT_FAIL(sparrow_detokenize(m, tokens, SIZE_MAX, NULL, 0, &got), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "PTRDIFF_MAX") != NULL);

    // Detokenize: round trip, size query, too small, bad ids.
    size_t length = 0;
    EXPECT_FAIL(sparrow_detokenize(m, tokens, got, NULL, 0, &length), SPARROW_ERR_BUFFER_TOO_SMALL);
    CHECK(length == strlen(text));
    char *back = malloc(length + 1);
    EXPECT_FAIL(sparrow_detokenize(m, tokens, got, back, length, &length), SPARROW_ERR_BUFFER_TOO_SMALL);
    EXPECT_OK(sparrow_detokenize(m, tokens, got, back, length + 1, &length));
    CHECK(strcmp(back, text) == 0);
    int32_t bad_ids[2] = {0, info.vocab_size};
    EXPECT_FAIL(sparrow_detokenize(m, bad_ids, 2, back, length + 1, &length), SPARROW_ERR_INVALID_ARGUMENT);
    bad_ids[1] = -1;
    EXPECT_FAIL(sparrow_detokenize(m, bad_ids, 2, back, length + 1, &length), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_detokenize(m, NULL, 2, back, length + 1, &length), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_detokenize(m, tokens, got, back, length + 1, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    free(back);
    free(tokens);
}

static void test_session(sparrow_model *m, sparrow_model *other) {
    sparrow_session *s = NULL;
    EXPECT_FAIL(sparrow_session_create(m, NULL, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    sparrow_session_params sp = sparrow_session_default_params();
    sp.struct_size = sizeof sp + 4;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    sp = sparrow_session_default_params();
    sp.threads = -1;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    sp = sparrow_session_default_params();
    sp.io_backend = (sparrow_io_backend)7;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    sp = sparrow_session_default_params();
    sp.prefetch_depth = 9;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    sp = sparrow_session_default_params();
    sp.precision_policy = SPARROW_PRECISION_TOKEN;
    sp.token_full_threshold = 0.9f;
    sp.token_low_threshold = 0.1f;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    sp = sparrow_session_default_params();
    sp.precision_policy = SPARROW_PRECISION_TOKEN;
    sp.token_profile_tolerance = 2.0f;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "token_profile_tolerance") != NULL);
    sp = sparrow_session_default_params();
    /* The defaults are the measured best under a budget: token precision `auto`, prefetch 1. */
    CHECK(sp.background_upgrades && sp.intra_layer_plan && sp.token_profile_tolerance == 0.05f);
    CHECK(sp.precision_policy == SPARROW_PRECISION_TOKEN && sp.prefetch_depth == 1);
    sp.expert_bits = 5;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    sp = sparrow_session_default_params();
    sp.memory_budget = 1 << 20;  // 1 MiB: less than the dense weights
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_BUDGET);
    CHECK(strstr(sparrow_last_error(), "at least") != NULL);
    CHECK(s == NULL);

    // Absurd sizes: threads and context beyond what the machine or the model allow are refused;
    // a batch above the context is held to it; a budget above what the model can use is capped.
    sp = sparrow_session_default_params();
    sp.threads = INT32_MAX;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "threads") != NULL);
    sp = sparrow_session_default_params();
    sp.context_length = INT32_MAX;
    EXPECT_FAIL(sparrow_session_create(m, &sp, &s), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "max_position_embeddings") != NULL);
    sp = sparrow_session_default_params();
    sp.context_length = 32;
    sp.batch_size = INT32_MAX;
    EXPECT_OK(sparrow_session_create(m, &sp, &s));
    EXPECT_OK(sparrow_session_free(s));
    sp = sparrow_session_default_params();
    sp.context_length = 32;
    sp.memory_budget = UINT64_MAX;
    EXPECT_OK(sparrow_session_create(m, &sp, &s));
    EXPECT_OK(sparrow_session_evaluate(s, (const int32_t[]){1, 2, 3}, 3));
    EXPECT_OK(sparrow_session_free(s));
    s = NULL;

    sp = sparrow_session_default_params();
    sp.context_length = 64;
    EXPECT_OK(sparrow_session_create(m, &sp, &s));
    sparrow_model_info info = {.struct_size = sizeof info};
    EXPECT_OK(sparrow_model_get_info(m, &info));
    CHECK(info.live_sessions == 1);

    float *logits = malloc(sizeof(float) * (size_t)info.vocab_size);
    size_t count = 0;
    EXPECT_FAIL(sparrow_session_logits(s, logits, (size_t)info.vocab_size, &count), SPARROW_ERR_NO_DATA);
    int32_t token = 0;
    EXPECT_FAIL(sparrow_session_sample(s, NULL, &token), SPARROW_ERR_NO_DATA);

    int32_t prompt[3] = {1, 2, 3};
    EXPECT_FAIL(sparrow_session_evaluate(s, NULL, 3), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_session_evaluate(s, prompt, 0), SPARROW_ERR_INVALID_ARGUMENT);
    int32_t bad[1] = {info.vocab_size + 5};
    EXPECT_FAIL(sparrow_session_evaluate(s, bad, 1), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_OK(sparrow_session_evaluate(s, prompt, 3));
    EXPECT_FAIL(sparrow_session_logits(s, logits, 10, &count), SPARROW_ERR_BUFFER_TOO_SMALL);
    CHECK(count == (size_t)info.vocab_size);
    EXPECT_FAIL(sparrow_session_logits(s, logits, (size_t)info.vocab_size, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_OK(sparrow_session_logits(s, logits, (size_t)info.vocab_size, &count));
    int argmax = 0;
    for (int i = 1; i < info.vocab_size; i++) {
        if (logits[i] > logits[argmax]) argmax = i;
        CHECK(isfinite(logits[i]));
    }
    EXPECT_OK(sparrow_session_sample(s, NULL, &token));
    CHECK(token == argmax);
    sparrow_sample_params bad_sample = sparrow_sample_default_params();
    bad_sample.top_p = 0;
    EXPECT_FAIL(sparrow_session_sample(s, &bad_sample, &token), SPARROW_ERR_INVALID_ARGUMENT);
    bad_sample = sparrow_sample_default_params();
    bad_sample.struct_size = 1;
    EXPECT_FAIL(sparrow_session_sample(s, &bad_sample, &token), SPARROW_ERR_INVALID_ARGUMENT);
    // A struct as short as its struct_size field says, right before an inaccessible page: refused
    // without a read past its end (the library is not instrumented; a read past faults).
    long page = sysconf(_SC_PAGESIZE);
    char *pages = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(pages != MAP_FAILED && mprotect(pages + page, (size_t)page, PROT_NONE) == 0);
    size_t *short_params = (size_t *)(pages + page - sizeof(size_t));
    *short_params = sizeof *short_params;
    EXPECT_FAIL(sparrow_session_sample(s, (const sparrow_sample_params *)short_params, &token), SPARROW_ERR_INVALID_ARGUMENT);
    sparrow_session *short_session = NULL;
    EXPECT_FAIL(sparrow_session_create(m, (const sparrow_session_params *)short_params, &short_session),
                SPARROW_ERR_INVALID_ARGUMENT);
    munmap(pages, 2 * (size_t)page);
    EXPECT_FAIL(sparrow_session_sample(s, NULL, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    sparrow_sample_params warm = sparrow_sample_default_params();
    warm.temperature = 0.8f;
    warm.top_k = 40;
    warm.seed = 7;
    int32_t a = -1, b = -1;
    EXPECT_OK(sparrow_session_sample(s, &warm, &a));
    CHECK(a >= 0 && a < info.vocab_size);

    // Statistics as a struct and as JSON.
    sparrow_session_stats st = {.struct_size = sizeof st};
    EXPECT_OK(sparrow_session_get_stats(s, &st));
    CHECK(st.position == 3 && st.context_length == 64 && st.threads >= 1 && st.peak_rss > 0);
    CHECK(st.memory_budget == 0 && st.cache_slots == 0);
    sparrow_session_stats bad_st = {.struct_size = 0};
    EXPECT_FAIL(sparrow_session_get_stats(s, &bad_st), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_session_get_stats(s, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    char *json = NULL;
    EXPECT_OK(sparrow_session_stats_json(s, &json));
    CHECK(json != NULL && strstr(json, "\"position\":3") != NULL);
    sparrow_string_free(json);
    EXPECT_FAIL(sparrow_session_stats_json(s, NULL), SPARROW_ERR_INVALID_ARGUMENT);

    // Generation: callback text equals detokenized ids; a callback that stops; a full context.
    EXPECT_OK(sparrow_session_reset(s));
    collector c = {0};
    sparrow_generate_params gp = sparrow_generate_default_params();
    gp.max_tokens = 8;
    gp.stop_at_eos = false;
    sparrow_generation_stats gs = {.struct_size = sizeof gs};
    EXPECT_OK(sparrow_generate(s, prompt, 3, &gp, collect, &c, &gs));
    CHECK(c.calls == 8 && gs.generated_tokens == 8 && gs.prompt_tokens == 3);
    EXPECT_OK(sparrow_session_get_stats(s, &st));
    CHECK(st.position == 3 + 7);  // the last token is sampled, not evaluated
    collector stop = {.stop_after = 2};
    EXPECT_OK(sparrow_session_reset(s));
    EXPECT_OK(sparrow_generate(s, prompt, 3, &gp, collect, &stop, NULL));
    CHECK(stop.calls == 2);
    EXPECT_OK(sparrow_session_reset(s));
    EXPECT_OK(sparrow_generate(s, prompt, 3, &gp, NULL, NULL, NULL));
    gp.max_tokens = -1;
    EXPECT_FAIL(sparrow_generate(s, prompt, 3, &gp, NULL, NULL, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    gp = sparrow_generate_default_params();
    gp.struct_size = 8;
    EXPECT_FAIL(sparrow_generate(s, prompt, 3, &gp, NULL, NULL, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    // Absurd counts: max_tokens INT32_MAX reserves nothing up front (the context ends it); a prompt
    // longer than the context is refused before it is read; a count above PTRDIFF_MAX is an error.
    gp = sparrow_generate_default_params();
    gp.max_tokens = INT32_MAX;
    gp.stop_at_eos = false;
    EXPECT_OK(sparrow_session_reset(s));
    EXPECT_OK(sparrow_generate(s, prompt, 3, &gp, NULL, NULL, NULL));
    EXPECT_OK(sparrow_session_reset(s));
    EXPECT_FAIL(sparrow_generate(s, prompt, (size_t)1 << 40, &gp, NULL, NULL, NULL), SPARROW_ERR_CONTEXT_FULL);
    EXPECT_FAIL(sparrow_session_evaluate(s, prompt, (size_t)1 << 40), SPARROW_ERR_CONTEXT_FULL);
    EXPECT_FAIL(sparrow_session_evaluate(s, prompt, SIZE_MAX), SPARROW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sparrow_last_error(), "PTRDIFF_MAX") != NULL);
    sparrow_generation_stats bad_gs = {.struct_size = 1};
    EXPECT_FAIL(sparrow_generate(s, prompt, 3, NULL, NULL, NULL, &bad_gs), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(sparrow_generate(s, NULL, 3, NULL, NULL, NULL, NULL), SPARROW_ERR_INVALID_ARGUMENT);
    EXPECT_OK(sparrow_session_reset(s));
    int32_t *many = calloc(80, sizeof *many);
    for (int i = 0; i < 80; i++) many[i] = i % info.vocab_size;
    EXPECT_FAIL(sparrow_session_evaluate(s, many, 80), SPARROW_ERR_CONTEXT_FULL);
    free(many);

    // Copying state: same model works and continues identically; another model's session is refused.
    sparrow_session *t = NULL;
    EXPECT_OK(sparrow_session_reset(s));
    EXPECT_OK(sparrow_session_evaluate(s, prompt, 3));
    EXPECT_OK(sparrow_session_create(m, &sp, &t));
    EXPECT_OK(sparrow_session_copy_state(t, s));
    int32_t next = argmax;
    EXPECT_OK(sparrow_session_evaluate(s, &next, 1));
    EXPECT_OK(sparrow_session_evaluate(t, &next, 1));
    EXPECT_OK(sparrow_session_sample(s, NULL, &a));
    EXPECT_OK(sparrow_session_sample(t, NULL, &b));
    CHECK(a == b);
    if (other) {
        sparrow_session *u = NULL;
        EXPECT_OK(sparrow_session_create(other, NULL, &u));
        EXPECT_FAIL(sparrow_session_copy_state(u, s), SPARROW_ERR_MODEL_MISMATCH);
        EXPECT_OK(sparrow_session_free(u));
    }
    EXPECT_FAIL(sparrow_session_copy_state(t, NULL), SPARROW_ERR_INVALID_HANDLE);

    // A budgeted session streams experts and reports its cache.
    sparrow_session *budgeted = NULL;
    sp = sparrow_session_default_params();
    EXPECT_OK(sparrow_session_get_stats(s, &st));
    // Generous (the process's peak so far plus every expert and 64 MiB): the cache must fill from
    // storage all the same.
    sp.memory_budget = st.peak_rss + info.expert_bytes + (64u << 20);
    sp.cache_policy = SPARROW_CACHE_DISTANCE;
    sp.kv_type = SPARROW_KV_F16;
    sp.precision_policy = SPARROW_PRECISION_TOKEN;
    sp.prefetch_depth = 2;
    EXPECT_OK(sparrow_session_create(m, &sp, &budgeted));
    EXPECT_OK(sparrow_session_evaluate(budgeted, prompt, 3));
    EXPECT_OK(sparrow_session_get_stats(budgeted, &st));
    CHECK(st.memory_budget == sp.memory_budget && st.cache_slots > 0 && st.cache_misses > 0 && st.bytes_read > 0);
    json = NULL;
    EXPECT_OK(sparrow_session_stats_json(budgeted, &json));
    CHECK(json && strstr(json, "\"scheduler\"") != NULL && strstr(json, "\"cachePolicy\":\"distance\"") != NULL && strstr(json, "\"kvType\":\"f16\"") != NULL);
    sparrow_string_free(json);
    EXPECT_OK(sparrow_session_free(budgeted));

    // Closing the model first: its sessions keep working; use after free is refused.
    EXPECT_OK(sparrow_session_free(t));
    EXPECT_FAIL(sparrow_session_free(t), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_evaluate(t, prompt, 1), SPARROW_ERR_INVALID_HANDLE);
    free(logits);
    EXPECT_OK(sparrow_model_close(m));
    EXPECT_FAIL(sparrow_model_get_info(m, &info), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_FAIL(sparrow_session_create(m, NULL, &t), SPARROW_ERR_INVALID_HANDLE);
    EXPECT_OK(sparrow_session_reset(s));
    EXPECT_OK(sparrow_session_evaluate(s, prompt, 3));
    EXPECT_OK(sparrow_session_free(s));
    EXPECT_FAIL(sparrow_model_close(m), SPARROW_ERR_INVALID_HANDLE);
}

/// The model file truncated under running sessions (resident and budgeted): each call fails with a
/// message (the mapping's lost pages are guarded: no SIGBUS), again on the next call; freeing works.
static void test_truncated_while_running(const char *model_path) {
    char copy[] = "/tmp/sparrow-api-truncated-XXXXXX";
    int fd = mkstemp(copy);
    CHECK(fd >= 0);
    FILE *in = fopen(model_path, "rb");
    CHECK(in != NULL);
    if (fd < 0 || !in) return;
    char chunk[1 << 16];
    size_t n, total = 0;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) {
        CHECK(write(fd, chunk, n) == (ssize_t)n);
        total += n;
    }
    fclose(in);
    sparrow_model *m = NULL;
    EXPECT_OK(sparrow_model_open(copy, NULL, &m));
    if (!m) return;
    sparrow_model_info info = {.struct_size = sizeof info};
    EXPECT_OK(sparrow_model_get_info(m, &info));
    sparrow_session *resident = NULL, *budgeted = NULL;
    sparrow_session_params sp = sparrow_session_default_params();
    sp.context_length = 64;
    EXPECT_OK(sparrow_session_create(m, &sp, &resident));
    sparrow_session_stats st = {.struct_size = sizeof st};
    EXPECT_OK(sparrow_session_get_stats(resident, &st));
    sp.memory_budget = st.peak_rss + info.expert_bytes / 4 + (48u << 20);
    EXPECT_OK(sparrow_session_create(m, &sp, &budgeted));
    int32_t prompt[3] = {1, 2, 3};
    EXPECT_OK(sparrow_session_evaluate(resident, prompt, 3));
    EXPECT_OK(sparrow_session_evaluate(budgeted, prompt, 3));
    CHECK(ftruncate(fd, (off_t)(total / 3)) == 0);
    sparrow_session *both[2] = {resident, budgeted};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 2; i++) {
            sparrow_status s = sparrow_session_evaluate(both[k], prompt, 3);
            CHECK(s != SPARROW_OK);
            CHECK(strstr(sparrow_last_error(), "truncated") != NULL || strstr(sparrow_last_error(), "cannot load") != NULL);
        }
        EXPECT_OK(sparrow_session_free(both[k]));
    }
    EXPECT_OK(sparrow_model_close(m));
    close(fd);
    unlink(copy);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.spw\n", argv[0]);
        return 2;
    }
    test_basics();
    test_bad_open(argv[1]);
    test_null_handles();
    test_truncated_while_running(argv[1]);
    sparrow_model *m = NULL, *other = NULL;
    EXPECT_OK(sparrow_model_open(argv[1], NULL, &m));
    if (!m) return 1;
    EXPECT_OK(sparrow_model_open(argv[1], NULL, &other));  // a second model (the same file, opened again)
    test_model(m);
    test_session(m, other);  // closes m
    if (other) EXPECT_OK(sparrow_model_close(other));
    if (failures) {
        fprintf(stderr, "api_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("api_test: all checks passed\n");
    return 0;
}
