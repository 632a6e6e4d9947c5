#ifndef SPARROW_POOL_H
#define SPARROW_POOL_H
/// A small fixed pool of compute threads for fork-join loops. The caller takes part; tasks are
/// claimed one at a time from an atomic counter, so a descheduled worker delays only the task it
/// holds (no barrier waits for it to start). Workers spin briefly, then sleep on a futex.
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spk_pool spk_pool;

/// Creates a pool that runs loops on `threads` threads (the caller plus threads - 1 workers).
/// Returns NULL if threads < 1 or a thread cannot be created.
spk_pool *spk_pool_create(int threads);

/// Stops and joins the workers, frees the pool. NULL is accepted.
void spk_pool_free(spk_pool *pool);

/// Threads the pool runs loops on.
int spk_pool_threads(const spk_pool *pool);

/// Runs fn(ctx, i) for i in [0, n) on the pool's threads and returns when all are done.
/// Not reentrant: one loop at a time per pool (a nested call runs serially on the caller).
void spk_pool_run(spk_pool *pool, size_t n, void (*fn)(void *ctx, size_t i), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
