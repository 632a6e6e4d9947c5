// The gated activations of the experts' MLPs: SwiGLU and gpt-oss's clamped SwiGLU, with an
// exponential in plain operations (no libm call) that the compiler vectorises, compiled once per
// x86 ISA with a target attribute and once for the baseline (SSE2; NEON on aarch64).
#include "sparrow_kernels.h"
#include <string.h>

// e^x within 2 ulp for x in [-87, 88] (1 ulp measured) (Cephes' expf: x = n ln 2 + r, |r| ≤ ln 2 / 2, a degree-6
// polynomial for e^r, 2^n from the exponent bits). x is clamped to that range first, so NaN and
// ±inf map to a finite value: the callers multiply by their own argument, which keeps NaN NaN.
static inline float exp_clamped(float x) {
    x = x > -87.0f ? x : -87.0f;  // NaN compares false: it becomes -87
    x = x < 88.0f ? x : 88.0f;
    int n = (int)(x * 1.44269504088896341f + 128.5f) - 128;  // round(x / ln 2); the sum is > 0
    float fn = (float)n;
    float r = x - fn * 0.693359375f - fn * -2.12194440e-4f;  // ln 2 in two parts: r exact
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23;  // n in [-126, 127]: a normal power of two
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
}

#define DEFINE_ACTIVATIONS(SUFFIX, TARGET)                                                    \
    TARGET static void swiglu_##SUFFIX(size_t n, float *restrict gate, const float *restrict up) { \
        for (size_t i = 0; i < n; i++) {                                                      \
            float g = gate[i];                                                                \
            gate[i] = g / (1.0f + exp_clamped(-g)) * up[i];                                   \
        }                                                                                     \
    }                                                                                         \
    TARGET static void clamped_swiglu_##SUFFIX(size_t n, float *restrict gate,                \
                                               const float *restrict up, float limit,         \
                                               float alpha) {                                 \
        for (size_t i = 0; i < n; i++) {                                                      \
            float g = gate[i] > limit ? limit : gate[i]; /* NaN stays NaN */                  \
            float u = up[i] > limit ? limit : up[i];                                          \
            u = u < -limit ? -limit : u;                                                      \
            gate[i] = g / (1.0f + exp_clamped(-alpha * g)) * (u + 1.0f);                      \
        }                                                                                     \
    }

#if defined(__x86_64__)
DEFINE_ACTIVATIONS(avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))))
DEFINE_ACTIVATIONS(avx2, __attribute__((target("avx2,fma"))))
#endif
DEFINE_ACTIVATIONS(baseline, )

void spk_swiglu(size_t n, float *gate, const float *up) {
#if defined(__x86_64__)
    int isa = spk_current_isa();
    if (isa == SPK_ISA_AVX512) { swiglu_avx512(n, gate, up); return; }
    if (isa == SPK_ISA_AVX2) { swiglu_avx2(n, gate, up); return; }
#endif
    swiglu_baseline(n, gate, up);
}

void spk_clamped_swiglu(size_t n, float *gate, const float *up, float limit, float alpha) {
#if defined(__x86_64__)
    int isa = spk_current_isa();
    if (isa == SPK_ISA_AVX512) { clamped_swiglu_avx512(n, gate, up, limit, alpha); return; }
    if (isa == SPK_ISA_AVX2) { clamped_swiglu_avx2(n, gate, up, limit, alpha); return; }
#endif
    clamped_swiglu_baseline(n, gate, up, limit, alpha);
}
