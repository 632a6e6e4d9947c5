#include "sparrow_kernels.h"
#include <string.h>

// ---------------------------------------------------------------------------
// Element loads

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

size_t spk_dtype_size(spk_dtype t) {
    switch (t) {
    case SPK_F32: return 4;
    case SPK_F16: return 2;
    case SPK_BF16: return 2;
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Reference kernels: sequential accumulation, no vectorisation assumptions.

static inline float load_ref(const void *w, spk_dtype t, size_t i) {
    switch (t) {
    case SPK_F32: return ((const float *)w)[i];
    case SPK_F16: return (float)((const _Float16 *)w)[i];
    case SPK_BF16: return bf16_to_f32(((const uint16_t *)w)[i]);
    }
    return 0;
}

void spk_gemm_ref(const float *x, size_t n, size_t ldx, size_t k,
                  const void *w, spk_dtype wt, size_t ldw,
                  size_t row0, size_t row1, float *y, size_t ldy) {
    for (size_t i = 0; i < n; i++) {
        for (size_t j = row0; j < row1; j++) {
            float s = 0;
            for (size_t t = 0; t < k; t++) s += x[i * ldx + t] * load_ref(w, wt, j * ldw + t);
            y[i * ldy + j] = s;
        }
    }
}

void spk_to_f32(const void *src, spk_dtype st, float *dst, size_t n) {
    switch (st) {
    case SPK_F32: memcpy(dst, src, n * 4); return;
    case SPK_F16: {
        const _Float16 *s = (const _Float16 *)src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return;
    }
    case SPK_BF16: {
        const uint16_t *s = (const uint16_t *)src;
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
        return;
    }
    }
}

void spk_from_f32(const float *src, void *dst, spk_dtype dt, size_t n) {
    switch (dt) {
    case SPK_F32: memcpy(dst, src, n * 4); return;
    case SPK_F16: {
        _Float16 *d = (_Float16 *)dst;
        for (size_t i = 0; i < n; i++) d[i] = (_Float16)src[i];
        return;
    }
    case SPK_BF16: {
        uint16_t *d = (uint16_t *)dst;
        for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
        return;
    }
    }
}

void spk_axpy(size_t n, float a, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

float spk_grid_error(const float *w, size_t n, float m, float d) {
    // Plain operations the compiler vectorises on any x86-64 or aarch64: q is clamped first, so
    // truncating q + 0.5 rounds it to nearest, ties away from zero, as the quantizer does.
    const float inv = 1.0f / d;
    float acc[16] = {0};
    for (size_t i0 = 0; i0 < n; i0 += 16) {
        for (size_t l = 0; l < 16; l++) {
            float x = w[i0 + l], q = (x - m) * inv;
            q = q < 0.0f ? 0.0f : (q > 255.0f ? 255.0f : q);
            int code = (int)(q + 0.5f);
            float r4 = m + d * ((float)((code >> 4) << 4) + 7.5f);
            float r2 = m + d * ((float)((code >> 6) << 6) + 31.5f);
            acc[l] += (r4 - x) * (r4 - x) + 0.25f * (r2 - x) * (r2 - x);
        }
    }
    float sum = 0;
    for (int l = 0; l < 16; l++) sum += acc[l];
    return sum;
}

// ---------------------------------------------------------------------------
// Vectorised kernels. One body, compiled once per ISA with a target attribute:
// 16 independent lanes per accumulator let the compiler map each onto one
// vector register without reassociating a reduction.

#define LANES 16
#define ROWS 4

#define DEFINE_GEMM(SUFFIX, TARGET, TYPE, LOAD)                                                   \
    TARGET static void gemm_##SUFFIX(const float *x, size_t n, size_t ldx, size_t k,              \
                                     const TYPE *w, size_t ldw, size_t row0, size_t row1,         \
                                     float *y, size_t ldy) {                                      \
        size_t kv = k - k % LANES;                                                                \
        size_t j = row0;                                                                          \
        for (; j + ROWS <= row1; j += ROWS) {                                                     \
            const TYPE *w0 = w + j * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;         \
            for (size_t i = 0; i < n; i++) {                                                      \
                const float *xi = x + i * ldx;                                                    \
                float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};         \
                for (size_t t = 0; t < kv; t += LANES) {                                          \
                    for (int l = 0; l < LANES; l++) {                                             \
                        float xv = xi[t + l];                                                     \
                        a0[l] += xv * LOAD(w0[t + l]);                                            \
                        a1[l] += xv * LOAD(w1[t + l]);                                            \
                        a2[l] += xv * LOAD(w2[t + l]);                                            \
                        a3[l] += xv * LOAD(w3[t + l]);                                            \
                    }                                                                             \
                }                                                                                 \
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                             \
                for (int l = 0; l < LANES; l++) {                                                 \
                    s0 += a0[l]; s1 += a1[l]; s2 += a2[l]; s3 += a3[l];                           \
                }                                                                                 \
                for (size_t t = kv; t < k; t++) {                                                 \
                    float xv = xi[t];                                                             \
                    s0 += xv * LOAD(w0[t]); s1 += xv * LOAD(w1[t]);                               \
                    s2 += xv * LOAD(w2[t]); s3 += xv * LOAD(w3[t]);                               \
                }                                                                                 \
                float *yi = y + i * ldy + j;                                                      \
                yi[0] = s0; yi[1] = s1; yi[2] = s2; yi[3] = s3;                                   \
            }                                                                                     \
        }                                                                                         \
        for (; j < row1; j++) {                                                                   \
            const TYPE *w0 = w + j * ldw;                                                         \
            for (size_t i = 0; i < n; i++) {                                                      \
                const float *xi = x + i * ldx;                                                    \
                float a0[LANES] = {0};                                                            \
                for (size_t t = 0; t < kv; t += LANES)                                            \
                    for (int l = 0; l < LANES; l++) a0[l] += xi[t + l] * LOAD(w0[t + l]);         \
                float s0 = 0;                                                                     \
                for (int l = 0; l < LANES; l++) s0 += a0[l];                                      \
                for (size_t t = kv; t < k; t++) s0 += xi[t] * LOAD(w0[t]);                        \
                y[i * ldy + j] = s0;                                                              \
            }                                                                                     \
        }                                                                                         \
    }

#define LOAD_F32(v) (v)
#define LOAD_F16(v) ((float)(v))
#define LOAD_BF16(v) bf16_to_f32(v)

#define TARGET_SCALAR
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

#if defined(__x86_64__)
DEFINE_GEMM(f32_avx512, TARGET_AVX512, float, LOAD_F32)
DEFINE_GEMM(f16_avx512, TARGET_AVX512, _Float16, LOAD_F16)
DEFINE_GEMM(bf16_avx512, TARGET_AVX512, uint16_t, LOAD_BF16)
DEFINE_GEMM(f32_avx2, TARGET_AVX2, float, LOAD_F32)
DEFINE_GEMM(f16_avx2, TARGET_AVX2, _Float16, LOAD_F16)
DEFINE_GEMM(bf16_avx2, TARGET_AVX2, uint16_t, LOAD_BF16)
#endif
DEFINE_GEMM(f32_scalar, TARGET_SCALAR, float, LOAD_F32)
DEFINE_GEMM(f16_scalar, TARGET_SCALAR, _Float16, LOAD_F16)
DEFINE_GEMM(bf16_scalar, TARGET_SCALAR, uint16_t, LOAD_BF16)

// ---------------------------------------------------------------------------
// Dispatch (float weights: the x86 variants; every other path runs the plain C loops, which the
// compiler vectorises for the target's baseline, NEON on aarch64)

void spk_gemm(const float *x, size_t n, size_t ldx, size_t k,
              const void *w, spk_dtype wt, size_t ldw,
              size_t row0, size_t row1, float *y, size_t ldy) {
    int isa = spk_current_isa();
    (void)isa;
    switch (wt) {
    case SPK_F32:
#if defined(__x86_64__)
        if (isa == SPK_ISA_AVX512) { gemm_f32_avx512(x, n, ldx, k, w, ldw, row0, row1, y, ldy); return; }
        if (isa == SPK_ISA_AVX2) { gemm_f32_avx2(x, n, ldx, k, w, ldw, row0, row1, y, ldy); return; }
#endif
        gemm_f32_scalar(x, n, ldx, k, w, ldw, row0, row1, y, ldy);
        return;
    case SPK_F16:
#if defined(__x86_64__)
        if (isa == SPK_ISA_AVX512) { gemm_f16_avx512(x, n, ldx, k, w, ldw, row0, row1, y, ldy); return; }
        if (isa == SPK_ISA_AVX2) { gemm_f16_avx2(x, n, ldx, k, w, ldw, row0, row1, y, ldy); return; }
#endif
        gemm_f16_scalar(x, n, ldx, k, w, ldw, row0, row1, y, ldy);
        return;
    case SPK_BF16:
#if defined(__x86_64__)
        if (isa == SPK_ISA_AVX512) { gemm_bf16_avx512(x, n, ldx, k, w, ldw, row0, row1, y, ldy); return; }
        if (isa == SPK_ISA_AVX2) { gemm_bf16_avx2(x, n, ldx, k, w, ldw, row0, row1, y, ldy); return; }
#endif
        gemm_bf16_scalar(x, n, ldx, k, w, ldw, row0, row1, y, ldy);
        return;
    }
}
