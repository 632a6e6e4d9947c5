// One model, several sessions, several threads: each thread generates from its own prompt.
//   c-multithread MODEL.spw [THREADS] [TOKENS]
// The model is opened once and shared (a model is thread-safe); each session is used by the
// thread that created it (a session is one thread's at a time).
#include <sparrow.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sparrow_model *model;
    const char *prompt;
    int tokens;
    char text[8192];
    size_t length;
    sparrow_status status;
    char error[512];
} job;

static bool append(int32_t token, const char *text, size_t length, void *user_data) {
    job *j = user_data;
    (void)token;
    if (j->length + length < sizeof j->text) {
        memcpy(j->text + j->length, text, length);
        j->length += length;
        j->text[j->length] = 0;
    }
    return true;
}

static void *generate(void *arg) {
    job *j = arg;
    sparrow_session_params sp = sparrow_session_default_params();
    sp.threads = 1;  // the threads share the cores
    sparrow_session *s = NULL;
    int32_t ids[256];
    size_t count = 0;
    sparrow_generate_params gp = sparrow_generate_default_params();
    gp.max_tokens = j->tokens;
    if ((j->status = sparrow_session_create(j->model, &sp, &s)) == SPARROW_OK &&
        (j->status = sparrow_tokenize(j->model, j->prompt, strlen(j->prompt), ids, 256, &count)) == SPARROW_OK)
        j->status = sparrow_generate(s, ids, count, &gp, append, j, NULL);
    if (j->status != SPARROW_OK) snprintf(j->error, sizeof j->error, "%s", sparrow_last_error());
    sparrow_session_free(s);  // NULL-safe: an error status, nothing else
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.spw [THREADS] [TOKENS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 4;
    int tokens = argc > 3 ? atoi(argv[3]) : 24;
    if (threads < 1 || threads > 64 || tokens < 0) {
        fprintf(stderr, "c-multithread: THREADS must be 1…64 and TOKENS ≥ 0\n");
        return 2;
    }
    static const char *prompts[] = {"def fibonacci(n):", "The capital of France is", "import numpy as np",
                                    "Once upon a time"};
    sparrow_model *model = NULL;
    if (sparrow_model_open(argv[1], NULL, &model) != SPARROW_OK) {
        fprintf(stderr, "c-multithread: %s\n", sparrow_last_error());
        return 1;
    }
    job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    for (int i = 0; i < threads; i++) {
        jobs[i].model = model;
        jobs[i].prompt = prompts[i % 4];
        jobs[i].tokens = tokens;
        pthread_create(&ids[i], NULL, generate, &jobs[i]);
    }
    int failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ids[i], NULL);
        if (jobs[i].status != SPARROW_OK) {
            fprintf(stderr, "thread %d: %s: %s\n", i, sparrow_status_name(jobs[i].status), jobs[i].error);
            failed = 1;
        } else {
            printf("[thread %d] %s%s\n", i, jobs[i].prompt, jobs[i].text);
        }
    }
    free(jobs);
    free(ids);
    sparrow_model_close(model);
    return failed;
}
