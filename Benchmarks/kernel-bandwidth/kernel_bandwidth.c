// Decode matvec of every integer kernel path against the memory read bandwidth, in one process:
// a 65 536 × 4 096 matrix quantized with levels 2,4,8 (every level at least 2.5× a 32 MiB L3), and
// the same planes read as E2M1 codes (levels 2,4 of an MXFP4 matrix: the table step added),
// 2 threads on the kernels' worker pool, each kernel run paired with a 512 MiB read probe run just
// before it (this VM's bandwidth drifts), the ratio taken pair by pair; medians of `reps` pairs.
//   Benchmarks/kernel-bandwidth/run [reps]
#include "sparrow_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ROWS = 65536, COLS = 4096, GROUP = 64, THREADS = 2, TASKS = 64 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    const spk_qmatrix *w;
    const spk_qact *a;
    float *y;
    const uint64_t *probe;
    size_t probe_words;
    uint64_t sums[TASKS];
} job;

static void matvec_task(void *ctx, size_t t) {
    job *j = ctx;
    size_t per = ROWS / TASKS;
    spk_qgemm(j->w, NULL, 1, COLS, j->a, t * per, (t + 1) * per, j->y, ROWS);
}

static void probe_task(void *ctx, size_t t) {
    job *j = ctx;
    size_t per = j->probe_words / TASKS;
    j->sums[t] = spk_read_sum(j->probe + t * per, per * 8);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 15;
    size_t groups = COLS / GROUP;
    uint8_t *planes[3] = {malloc((size_t)ROWS * COLS / 4), malloc((size_t)ROWS * COLS / 4), malloc((size_t)ROWS * COLS / 2)};
    uint16_t *scales = malloc((size_t)ROWS * groups * 4);
    uint8_t *shifts = malloc((size_t)ROWS * groups);
    uint64_t s = 1;
    for (int k = 0; k < 3; k++) {
        size_t bytes = (size_t)ROWS * COLS * (k == 2 ? 4 : 2) / 8;
        for (size_t i = 0; i < bytes; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            planes[k][i] = (uint8_t)(s >> 56);
        }
    }
    for (size_t i = 0; i < (size_t)ROWS * groups; i++) {
        scales[2 * i] = 0xB800;      // m = -0.5
        scales[2 * i + 1] = 0x1C00;  // d = 0.0039
        shifts[i] = (uint8_t)(i * 7);
    }
    float *x = malloc(COLS * 4), *y = malloc(ROWS * 4);
    for (int i = 0; i < COLS; i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    spk_qact a = {malloc(COLS), malloc(groups * 4), malloc(groups * 4), 1, COLS, GROUP};
    size_t probe_words = (512u << 20) / 8;
    uint64_t *probe = malloc(probe_words * 8);
    memset(probe, 1, probe_words * 8);
    spk_pool *pool = spk_pool_create(THREADS);
    job j = {0};
    j.a = &a;
    j.y = y;
    j.probe = probe;
    j.probe_words = probe_words;
    int best = spk_best_isa();
    printf("kernel decode matvec %dx%d (group %d), %d threads, best path %s; kernel ÷ probe, medians of %d pairs\n",
           ROWS, COLS, GROUP, THREADS, spk_isa_label(best), reps);
    printf("%-9s %10s %12s %12s %9s\n", "path", "bits", "kernel GB/s", "probe GB/s", "ratio");
    for (int isa = SPK_ISA_PORTABLE; isa < SPK_ISA_COUNT; isa++) {
        if (!spk_isa_available(isa)) continue;
        spk_set_process_isa(isa);
        spk_quantize_act(x, 1, COLS, &a);
        for (unsigned v = 0; v < 5; v++) {  // levels 2, 4, 8; then E2M1 2 and 4
            unsigned np = v < 3 ? v + 1 : v - 2, e2m1 = v >= 3;
            spk_qmatrix w = {ROWS,  COLS, GROUP, scales, {planes[0], planes[1], planes[2], NULL}, {2, 2, 4, 0}, (uint8_t)np,
                             e2m1 ? shifts : NULL};
            j.w = &w;
            size_t bytes = (size_t)ROWS * COLS * (np == 1 ? 2 : np == 2 ? 4 : 8) / 8 + (size_t)ROWS * groups * (e2m1 ? 5 : 4);
            double *ratio = malloc(reps * sizeof(double)), *kgb = malloc(reps * sizeof(double)),
                   *pgb = malloc(reps * sizeof(double));
            spk_pool_run(pool, TASKS, matvec_task, &j);  // warm-up
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                spk_pool_run(pool, TASKS, probe_task, &j);
                double t1 = now();
                spk_pool_run(pool, TASKS, matvec_task, &j);
                double t2 = now();
                pgb[r] = probe_words * 8 / (t1 - t0) / 1e9;
                kgb[r] = bytes / (t2 - t1) / 1e9;
                ratio[r] = kgb[r] / pgb[r];
            }
            qsort(ratio, reps, sizeof(double), cmp);
            qsort(kgb, reps, sizeof(double), cmp);
            qsort(pgb, reps, sizeof(double), cmp);
            unsigned bits = np == 1 ? 2 : np == 2 ? 4 : 8;
            printf("%-9s %5u%s %12.1f %12.1f %8.0f %%\n", spk_isa_label(isa), bits, e2m1 ? " e2m1" : "     ", kgb[reps / 2], pgb[reps / 2],
                   100 * ratio[reps / 2]);
            free(ratio);
            free(kgb);
            free(pgb);
        }
    }
    spk_pool_free(pool);
    return 0;
}
