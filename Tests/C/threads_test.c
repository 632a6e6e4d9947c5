// One model shared by several sessions on several threads (the header's thread-safety contract):
// every thread's greedy generation equals the single-threaded one. Built by Tests/C/run.sh with
// -fsanitize=thread.
//   threads_test MODEL.spw [THREADS]
#include <sparrow.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TOKENS = 16, MAX_THREADS = 16 };

typedef struct {
    sparrow_model *model;
    int32_t tokens[MAX_TOKENS];
    int count;
    sparrow_status status;
    char error[512];
} job;

static bool record(int32_t token, const char *text, size_t length, void *user_data) {
    job *j = user_data;
    (void)text;
    (void)length;
    if (j->count < MAX_TOKENS) j->tokens[j->count++] = token;
    return true;
}

static void *run(void *arg) {
    job *j = arg;
    sparrow_session_params sp = sparrow_session_default_params();
    sp.threads = 1;
    sp.context_length = 128;
    sparrow_session *s = NULL;
    j->status = sparrow_session_create(j->model, &sp, &s);
    if (j->status == SPARROW_OK) {
        int32_t prompt[64];
        size_t n = 0;
        const char *text = "The quick brown fox";
        j->status = sparrow_tokenize(j->model, text, strlen(text), prompt, 64, &n);
        sparrow_generate_params gp = sparrow_generate_default_params();
        gp.max_tokens = MAX_TOKENS;
        gp.stop_at_eos = false;
        if (j->status == SPARROW_OK) j->status = sparrow_generate(s, prompt, n, &gp, record, j, NULL);
    }
    if (j->status != SPARROW_OK) snprintf(j->error, sizeof j->error, "%s", sparrow_last_error());
    if (s) sparrow_session_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.spw [THREADS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    if (threads < 1 || threads > MAX_THREADS) threads = 4;
    sparrow_model *m = NULL;
    if (sparrow_model_open(argv[1], NULL, &m) != SPARROW_OK) {
        fprintf(stderr, "threads_test: %s\n", sparrow_last_error());
        return 1;
    }
    job reference = {.model = m};
    run(&reference);
    if (reference.status != SPARROW_OK || reference.count != MAX_TOKENS) {
        fprintf(stderr, "threads_test: reference run failed: %s\n", reference.error);
        return 1;
    }
    job jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].model = m;
        pthread_create(&ids[i], NULL, run, &jobs[i]);
    }
    int failures = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        if (jobs[i].status != SPARROW_OK) {
            fprintf(stderr, "threads_test: thread %d: %s: %s\n", i, sparrow_status_name(jobs[i].status), jobs[i].error);
            failures++;
        } else if (jobs[i].count != reference.count || memcmp(jobs[i].tokens, reference.tokens, sizeof reference.tokens) != 0) {
            fprintf(stderr, "threads_test: thread %d generated different tokens\n", i);
            failures++;
        }
    }
    sparrow_model_close(m);
    if (failures) return 1;
    printf("threads_test: %d threads, one model: identical greedy output\n", threads);
    return 0;
}
