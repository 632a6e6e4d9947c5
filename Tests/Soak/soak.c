// The soak: several budgeted sessions sharing one model, each on its own thread, decoding a long
// teacher-forced stream through the C library (Scripts/soak.sh builds and runs it).
//   soak MODEL.spw TEXT TOKENS [SESSIONS] [EXPERT_SHARE]
// Each session decodes TOKENS tokens of TEXT one at a time (each from its own offset; the session
// is reset when its context is full), with the library's defaults under a budget (token-level
// precision, prefetch 1). Session k's budget counts the whole process once it exists (the
// documented accounting, docs/CACHE.md): what is resident when it is created, plus an expert cache
// of EXPERT_SHARE (default 0.25) of the model's expert bytes, plus its own KV cache and scratch.
// Every 500 tokens (of the slowest session) it samples RSS, open descriptors and threads, and fails
// unless: RSS stays within ±2 % of its first sample, the peak stays within the largest budget,
// descriptors and threads do not grow, every step succeeds with finite logits, and freeing the
// sessions gives back their descriptors and threads. Prints one JSON line of figures.
#define _GNU_SOURCE
#include <sparrow.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_SESSIONS = 16, MAX_SAMPLES = 4096, SAMPLE_EVERY = 500, CONTEXT = 512 };

typedef struct {
    sparrow_session *session;
    const int32_t *stream;
    size_t stream_count;
    size_t offset;
    int tokens;
    float *logits;
    size_t vocab;
    atomic_int done;
    sparrow_status status;
    char error[512];
} worker;

static long status_field(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long value = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            value = atol(line + n + 1);
            break;
        }
    }
    fclose(f);
    return value;
}

static long rss_bytes(void) { return status_field("VmRSS") * 1024; }
static long peak_bytes(void) { return status_field("VmHWM") * 1024; }
static long thread_count(void) { return status_field("Threads"); }

static long open_descriptors(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n - 3;  // ".", ".." and the directory's own descriptor
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *decode(void *arg) {
    worker *w = arg;
    int position = 0;
    for (int i = 0; i < w->tokens; i++, position++) {
        if (position == CONTEXT) {
            if (sparrow_session_reset(w->session) != SPARROW_OK) goto failed;
            position = 0;
        }
        int32_t token = w->stream[(w->offset + (size_t)i) % w->stream_count];
        if (sparrow_session_evaluate(w->session, &token, 1) != SPARROW_OK) goto failed;
        if (i % 97 == 0) {
            size_t count = 0;
            if (sparrow_session_logits(w->session, w->logits, w->vocab, &count) != SPARROW_OK) goto failed;
            for (size_t j = 0; j < count; j++) {
                if (!isfinite(w->logits[j])) {
                    w->status = SPARROW_ERR_INTERNAL;
                    snprintf(w->error, sizeof w->error, "logit %zu is not finite at token %d", j, i);
                    return NULL;
                }
            }
        }
        atomic_store(&w->done, i + 1);
    }
    return NULL;
failed:
    w->status = SPARROW_ERR_INTERNAL;
    snprintf(w->error, sizeof w->error, "%s", sparrow_last_error());
    return NULL;
}

/* Waits (up to 3 s) until at most `fds` descriptors and `threads` threads remain (-1: 0.5 s):
 * threads of freed sessions end asynchronously. */
static void settle(long fds, long threads) {
    for (int i = 0; i < (fds < 0 ? 25 : 150); i++) {
        if (fds >= 0 && open_descriptors() <= fds && thread_count() <= threads) return;
        usleep(20000);
    }
}

static int fail(const char *what) {
    fprintf(stderr, "soak: FAILED: %s\n", what);
    return 1;
}

/* Creates a session whose budget is the process's RSS now plus `cache` bytes of experts plus
 * `extra` for its KV cache, scratch and reserve: the smallest `extra` (in small steps) with which
 * the session's expert cache holds at least `cache` bytes. */
static sparrow_status create(sparrow_model *m, uint64_t cache, sparrow_session **s, uint64_t *budget) {
    sparrow_session_params sp = sparrow_session_default_params();
    sp.threads = 1;
    sp.context_length = CONTEXT;
    uint64_t step = cache / 16 > (256u << 10) ? cache / 16 : (256u << 10);
    for (uint64_t extra = 1u << 20; extra <= (1ull << 34); extra += step) {
        sp.memory_budget = (uint64_t)rss_bytes() + cache + extra;
        *budget = sp.memory_budget;
        sparrow_status st = sparrow_session_create(m, &sp, s);
        if (st == SPARROW_ERR_BUDGET) continue;
        if (st != SPARROW_OK) return st;
        sparrow_session_stats stats = {.struct_size = sizeof stats};
        sparrow_session_get_stats(*s, &stats);
        if ((uint64_t)stats.cache_slots * stats.cache_slot_bytes >= cache) return SPARROW_OK;
        sparrow_session_free(*s);
        *s = NULL;
    }
    return SPARROW_ERR_BUDGET;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.spw TEXT TOKENS [SESSIONS] [EXPERT_SHARE]\n", argv[0]);
        return 2;
    }
    int tokens = atoi(argv[3]);
    int sessions = argc > 4 ? atoi(argv[4]) : 4;
    double share = argc > 5 ? atof(argv[5]) : 0.25;
    if (tokens < SAMPLE_EVERY || sessions < 1 || sessions > MAX_SESSIONS || !(share > 0 && share <= 1)) {
        fprintf(stderr, "soak: TOKENS ≥ %d, 1 ≤ SESSIONS ≤ %d, 0 < EXPERT_SHARE ≤ 1\n", SAMPLE_EVERY, MAX_SESSIONS);
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) return fail("cannot open the text");
    fseek(f, 0, SEEK_END);
    long length = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)length + 1);
    if (!text || fread(text, 1, (size_t)length, f) != (size_t)length) return fail("cannot read the text");
    fclose(f);

    long fds_before = open_descriptors(), threads_before = thread_count();
    sparrow_model *m = NULL;
    if (sparrow_model_open(argv[1], NULL, &m) != SPARROW_OK) return fail(sparrow_last_error());
    sparrow_model_info info = {.struct_size = sizeof info};
    if (sparrow_model_get_info(m, &info) != SPARROW_OK) return fail(sparrow_last_error());
    int32_t *stream = malloc(sizeof(int32_t) * (size_t)length + 64);
    size_t stream_count = 0;
    if (sparrow_tokenize(m, text, (size_t)length, stream, (size_t)length + 16, &stream_count) != SPARROW_OK)
        return fail(sparrow_last_error());
    if (stream_count < 64) return fail("the text is too short");

    // One short round first: what the runtime sets up once per process (its event descriptors,
    // worker threads) is the baseline, not growth.
    worker w[MAX_SESSIONS];
    for (int k = 0; k < sessions; k++) {
        uint64_t b;
        sparrow_session *s = NULL;
        if (create(m, (uint64_t)(share * (double)info.expert_bytes), &s, &b) != SPARROW_OK) return fail(sparrow_last_error());
        for (int i = 0; i < 32; i++) {
            if (sparrow_session_evaluate(s, &stream[i], 1) != SPARROW_OK) return fail(sparrow_last_error());
        }
        sparrow_session_free(s);
    }
    settle(-1, -1);
    long fds_model = open_descriptors(), threads_model = thread_count();
    uint64_t budget[MAX_SESSIONS], largest = 0, cache = (uint64_t)(share * (double)info.expert_bytes);
    memset(w, 0, sizeof w);
    for (int k = 0; k < sessions; k++) {
        if (create(m, cache, &w[k].session, &budget[k]) != SPARROW_OK) return fail(sparrow_last_error());
        if (budget[k] > largest) largest = budget[k];
        w[k].stream = stream;
        w[k].stream_count = stream_count;
        w[k].offset = (size_t)k * stream_count / (size_t)sessions;
        w[k].tokens = tokens;
        w[k].vocab = (size_t)info.vocab_size;
        w[k].logits = malloc(sizeof(float) * w[k].vocab);
    }
    long fds_start = open_descriptors(), threads_start = -1;
    long samples[MAX_SAMPLES];
    int sample_count = 0;
    pthread_t t[MAX_SESSIONS];
    double started = now();
    for (int k = 0; k < sessions; k++) pthread_create(&t[k], NULL, decode, &w[k]);
    usleep(100000);
    threads_start = thread_count();
    long fds_max = fds_start, threads_max = threads_start;
    for (;;) {
        int slowest = tokens, finished = 1;
        for (int k = 0; k < sessions; k++) {
            int d = atomic_load(&w[k].done);
            if (d < slowest) slowest = d;
            if (d < tokens && w[k].status == SPARROW_OK) finished = 0;
        }
        while (sample_count < MAX_SAMPLES && slowest >= (sample_count + 1) * SAMPLE_EVERY) {
            samples[sample_count++] = rss_bytes();
            long fds = open_descriptors(), threads = thread_count();
            if (fds > fds_max) fds_max = fds;
            if (threads > threads_max) threads_max = threads;
        }
        if (finished) break;
        usleep(20000);
    }
    for (int k = 0; k < sessions; k++) pthread_join(t[k], NULL);
    double seconds = now() - started;
    for (int k = 0; k < sessions; k++) {
        if (w[k].status != SPARROW_OK) {
            fprintf(stderr, "soak: session %d: %s\n", k, w[k].error);
            return fail("a decode step failed");
        }
    }
    long fds_end = open_descriptors(), threads_end = thread_count(), peak = peak_bytes();
    for (int i = 0; i < sample_count; i++) {
        if (samples[i] > peak) peak = samples[i];  // VmHWM can lag VmRSS by a few per-thread pages
    }
    uint64_t hits = 0, misses = 0, read = 0, arena = 0;
    for (int k = 0; k < sessions; k++) {
        sparrow_session_stats st = {.struct_size = sizeof st};
        sparrow_session_get_stats(w[k].session, &st);
        hits += st.cache_hits;
        misses += st.cache_misses;
        read += st.bytes_read;
        arena += (uint64_t)st.cache_slots * st.cache_slot_bytes;
        sparrow_session_free(w[k].session);
        free(w[k].logits);
    }
    settle(fds_model, threads_model);
    long fds_freed = open_descriptors(), threads_freed = thread_count();
    sparrow_model_close(m);

    long low = samples[0], high = samples[0];
    for (int i = 1; i < sample_count; i++) {
        if (samples[i] < low) low = samples[i];
        if (samples[i] > high) high = samples[i];
    }
    double drift = (double)(high - low) / (double)samples[0];
    printf("{\"sessions\":%d,\"tokens_per_session\":%d,\"seconds\":%.1f,\"tokens_per_second\":%.1f,"
           "\"expert_bytes\":%llu,\"cache_share\":%.3f,\"largest_budget\":%llu,\"peak_rss\":%ld,"
           "\"rss_first\":%ld,\"rss_low\":%ld,\"rss_high\":%ld,\"rss_drift\":%.4f,\"samples\":%d,"
           "\"hit_rate\":%.3f,\"bytes_read\":%llu,"
           "\"fds\":[%ld,%ld,%ld,%ld,%ld,%ld],\"threads\":[%ld,%ld,%ld,%ld,%ld,%ld]}\n",
           sessions, tokens, seconds, (double)tokens * sessions / seconds, (unsigned long long)info.expert_bytes,
           (double)arena / sessions / (double)info.expert_bytes, (unsigned long long)largest, peak, samples[0], low,
           high, drift, sample_count, hits + misses ? (double)hits / (double)(hits + misses) : 0,
           (unsigned long long)read, fds_before, fds_model, fds_start, fds_max, fds_end, fds_freed,
           threads_before, threads_model, threads_start, threads_max, threads_end, threads_freed);
    int bad = 0;
    if (drift > 0.02) bad |= fail("RSS moved more than 2 % over the run");
    if ((uint64_t)peak > largest) bad |= fail("peak RSS above the largest budget");
    // (fds_max may count a descriptor another thread holds for a moment, e.g. reading /proc.)
    if (fds_end > fds_start) bad |= fail("open descriptors grew during the run");
    if (threads_max > threads_start) bad |= fail("threads grew during the run");
    if (fds_freed > fds_model) bad |= fail("freeing the sessions left descriptors open");
    if (threads_freed > threads_model) bad |= fail("freeing the sessions left threads running");
    free(stream);
    free(text);
    return bad;
}
