#define _GNU_SOURCE
#include "sparrow_pool.h"
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
#endif

/// `claim` packs the running loop's task count (high 32 bits) with the next task index (low 32
/// bits), so a claim and the bound it must be checked against come from one atomic read: a worker
/// that overshoots the end of one loop can never mistake the next loop's count for its own. It is
/// 0 between loops (count 0: every claim is out of range).

struct spk_pool {
    int threads;
    pthread_t *workers;
    // The current loop.
    void (*fn)(void *, size_t);
    void *ctx;
    uint64_t claim;       // (task count << 32) | next task index (atomic)
    size_t done;          // tasks finished (atomic)
    uint32_t generation;  // bumped per loop; workers futex-wait on it
    uint32_t busy;        // a loop is running (nested calls run serially)
    int stop;
};

static void futex_wait(uint32_t *addr, uint32_t expected) {
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(uint32_t *addr) {
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void work(spk_pool *p) {
    for (;;) {
        uint64_t v = __atomic_fetch_add(&p->claim, 1, __ATOMIC_ACQ_REL);
        size_t i = (size_t)(uint32_t)v, n = (size_t)(v >> 32);
        if (i >= n) break;
        // A valid claim keeps its loop running (its owner waits for it), so fn and ctx are its.
        p->fn(p->ctx, i);
        __atomic_fetch_add(&p->done, 1, __ATOMIC_ACQ_REL);
    }
}

static void *worker_main(void *arg) {
    spk_pool *p = arg;
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE);
        if (g == seen) {
            // Spin a little (a loop usually follows soon during a forward pass), then sleep.
            int spins = 0;
            while ((g = __atomic_load_n(&p->generation, __ATOMIC_ACQUIRE)) == seen && spins < 20000) {
                PAUSE();
                spins++;
            }
            if (g == seen) {
                if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
                futex_wait(&p->generation, seen);
                continue;
            }
        }
        seen = g;
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) return NULL;
        work(p);
    }
}

spk_pool *spk_pool_create(int threads) {
    if (threads < 1) return NULL;
    spk_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = threads;
    p->claim = 0;
    p->workers = calloc((size_t)threads, sizeof(pthread_t));
    if (!p->workers) { free(p); return NULL; }
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&p->workers[t], NULL, worker_main, p) != 0) {
            p->threads = t;
            spk_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void spk_pool_free(spk_pool *p) {
    if (!p) return;
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(&p->generation, 1, __ATOMIC_ACQ_REL);
    futex_wake_all(&p->generation);
    for (int t = 1; t < p->threads; t++) pthread_join(p->workers[t], NULL);
    free(p->workers);
    free(p);
}

int spk_pool_threads(const spk_pool *p) { return p ? p->threads : 1; }

void spk_pool_run(spk_pool *p, size_t n, void (*fn)(void *, size_t), void *ctx) {
    if (n == 0) return;
    uint32_t expected = 0;
    if (!p || p->threads == 1 || n == 1 || n > UINT32_MAX ||
        !__atomic_compare_exchange_n(&p->busy, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        for (size_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    // `claim` is 0 here, so a late worker cannot claim a task while the loop is being set up; it
    // is published last, after fn, ctx and done.
    p->fn = fn;
    p->ctx = ctx;
    __atomic_store_n(&p->done, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&p->claim, (uint64_t)n << 32, __ATOMIC_RELEASE);
    __atomic_fetch_add(&p->generation, 1, __ATOMIC_ACQ_REL);
    futex_wake_all(&p->generation);
    work(p);
    // Wait for tasks other threads hold; yield rather than spin if one is descheduled.
    int spins = 0;
    while (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < n) {
        if (++spins < 4096) PAUSE(); else sched_yield();
    }
    __atomic_store_n(&p->claim, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&p->busy, 0, __ATOMIC_RELEASE);
}
