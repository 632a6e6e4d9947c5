// Memory read bandwidth probe: streams a buffer with wide loads and several independent
// accumulators, so the figure is the memory system's, not the loop's.
#include "sparrow_kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static uint64_t read_sum_scalar(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3]; }
    for (; i < n; i++) a += p[i];
    return a + b + c + d;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t read_sum_avx512(const uint64_t *p, size_t n) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a = _mm512_add_epi64(a, _mm512_loadu_si512((const void *)(p + i)));
        b = _mm512_add_epi64(b, _mm512_loadu_si512((const void *)(p + i + 8)));
        c = _mm512_add_epi64(c, _mm512_loadu_si512((const void *)(p + i + 16)));
        d = _mm512_add_epi64(d, _mm512_loadu_si512((const void *)(p + i + 24)));
    }
    uint64_t s = (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    return s + read_sum_scalar(p + i, n - i);
}

__attribute__((target("avx2"))) static uint64_t read_sum_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + read_sum_scalar(p + i, n - i);
}
#endif

uint64_t spk_read_sum(const void *data, size_t bytes) {
    const uint64_t *p = (const uint64_t *)data;
    size_t n = bytes / 8;
#if defined(__x86_64__)
    if (spk_best_isa() == SPK_ISA_AVX512) return read_sum_avx512(p, n);  // a probe: always the widest loads
    if (spk_best_isa() == SPK_ISA_AVX2) return read_sum_avx2(p, n);
#endif
    return read_sum_scalar(p, n);
}
