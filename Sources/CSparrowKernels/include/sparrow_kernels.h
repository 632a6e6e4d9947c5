#ifndef SPARROW_KERNELS_H
#define SPARROW_KERNELS_H
/// Hot kernels of Sparrow. Plain C with per-ISA variants (scalar, AVX2+F16C,
/// AVX-512) picked once at start-up by __builtin_cpu_supports. Pointers and
/// shapes only: no files, no models, no allocation.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Element type of a weight matrix.
typedef enum spk_dtype {
    SPK_F32 = 0,
    SPK_F16 = 1,
    SPK_BF16 = 2,
} spk_dtype;

/// Bytes per element of `t`.
size_t spk_dtype_size(spk_dtype t);

/// Name of the instruction set the dispatched kernels use ("avx512", "avx2", "scalar").
const char *spk_isa_name(void);

/// Forces a variant for tests and benchmarks: 0 scalar, 1 avx2, 2 avx512, -1 best available.
/// Returns the variant in force (a request the CPU cannot run falls back to the best one).
int spk_force_isa(int isa);

/// y[i * ldy + j] = sum_t x[i * ldx + t] * w[j * ldw + t]
/// for i in [0, n), j in [row0, row1); t in [0, k). Weights of type `wt`,
/// activations and results f32, accumulation f32.
void spk_gemm(const float *x, size_t n, size_t ldx, size_t k,
              const void *w, spk_dtype wt, size_t ldw,
              size_t row0, size_t row1, float *y, size_t ldy);

/// The portable reference for spk_gemm (plain loops, sequential accumulation).
void spk_gemm_ref(const float *x, size_t n, size_t ldx, size_t k,
                  const void *w, spk_dtype wt, size_t ldw,
                  size_t row0, size_t row1, float *y, size_t ldy);

/// y[t] += a * x[t] for t in [0, n).
void spk_axpy(size_t n, float a, const float *x, float *y);

/// dst[t] = (float)src[t] for t in [0, n).
void spk_to_f32(const void *src, spk_dtype st, float *dst, size_t n);

/// dst[t] = src[t] rounded to nearest even in type `dt` (f32 copies).
void spk_from_f32(const float *src, void *dst, spk_dtype dt, size_t n);

/// CRC-32C (Castagnoli) of `len` bytes, continuing from `crc` (start with 0).
uint32_t spk_crc32c(uint32_t crc, const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
