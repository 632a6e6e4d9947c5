// Streams generated text from a Sparrow model through the C interface.
//   c-generate -m MODEL.spw -p PROMPT [-n TOKENS] [--budget BYTES]
// With --budget the experts stream from storage into a cache and the whole process stays
// within BYTES (e.g. 64000000); the statistics go to stderr.
#include <sparrow.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool print_token(int32_t token, const char *text, size_t length, void *user_data) {
    (void)token;
    (void)user_data;
    fwrite(text, 1, length, stdout);
    fflush(stdout);
    return true;
}

static int fail(const char *what) {
    fprintf(stderr, "c-generate: %s: %s\n", what, sparrow_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    long tokens = 32;
    unsigned long long budget = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) tokens = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s -m MODEL.spw -p PROMPT [-n TOKENS] [--budget BYTES]\n", argv[0]);
            return 2;
        }
    }
    if (!model_path || !prompt || tokens < 0) {
        fprintf(stderr, "usage: %s -m MODEL.spw -p PROMPT [-n TOKENS] [--budget BYTES]\n", argv[0]);
        return 2;
    }

    sparrow_model *model = NULL;
    if (sparrow_model_open(model_path, NULL, &model) != SPARROW_OK) return fail("open");

    size_t count = 0;
    sparrow_tokenize(model, prompt, strlen(prompt), NULL, 0, &count);  // the size needed
    int32_t *ids = malloc(count * sizeof *ids);
    if (sparrow_tokenize(model, prompt, strlen(prompt), ids, count, &count) != SPARROW_OK) return fail("tokenize");

    sparrow_session_params sp = sparrow_session_default_params();
    sp.memory_budget = budget;
    sparrow_session *session = NULL;
    if (sparrow_session_create(model, &sp, &session) != SPARROW_OK) return fail("session");

    sparrow_generate_params gp = sparrow_generate_default_params();
    gp.max_tokens = (int32_t)tokens;
    sparrow_generation_stats stats = {.struct_size = sizeof stats};
    fputs(prompt, stdout);
    if (sparrow_generate(session, ids, count, &gp, print_token, NULL, &stats) != SPARROW_OK) return fail("generate");
    fputs("\n", stdout);

    char *json = NULL;
    if (sparrow_session_stats_json(session, &json) == SPARROW_OK) {
        fprintf(stderr, "%d tokens at %.1f tok/s; session: %s\n", stats.generated_tokens,
                stats.decode_seconds > 0 ? stats.generated_tokens / stats.decode_seconds : 0.0, json);
        sparrow_string_free(json);
    }
    free(ids);
    sparrow_session_free(session);
    sparrow_model_close(model);
    return 0;
}
