#ifndef SPARROW_KERNELS_H
#define SPARROW_KERNELS_H
/// Hot kernels of Sparrow. Plain C with per-ISA variants (scalar, AVX2+F16C,
/// AVX-512) picked once at start-up by __builtin_cpu_supports. Pointers and
/// shapes only: no files, no models, no allocation.
#include <stddef.h>
#include <stdint.h>
#include "sparrow_pool.h"

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

/// The kernel paths. x86-64 has scalar < portable < avx2 < avx512; aarch64 has scalar < portable <
/// neon < dotprod < i8mm. `scalar`: plain C, quantized matrices through a float path (no activation
/// quantization). `portable`: plain C, quantized matrices through the integer path (int8
/// activations, codes unpacked a block at a time with word operations): what a CPU without a
/// dedicated path gets. The others are the integer path with that instruction set's dot products.
typedef enum spk_isa {
    SPK_ISA_SCALAR = 0,
    SPK_ISA_PORTABLE = 1,
    SPK_ISA_AVX2 = 2,      // AVX2 + FMA + F16C, OS-enabled YMM state
    SPK_ISA_AVX512 = 3,    // AVX-512 F/BW/VL/DQ + VNNI, OS-enabled ZMM state
    SPK_ISA_NEON = 4,      // ARMv8 Advanced SIMD
    SPK_ISA_DOTPROD = 5,   // + SDOT (ARMv8.2 dotprod)
    SPK_ISA_I8MM = 6,      // + SMMLA (ARMv8.6 i8mm) for the prefill GEMM
    SPK_ISA_COUNT = 7,
} spk_isa;

/// Name of the path the calling thread's kernels use ("avx512", "avx2", "portable", "neon", ...).
const char *spk_isa_name(void);

/// Name of any path (NULL for a value out of range).
const char *spk_isa_label(int isa);

/// The path named `name` (as spk_isa_label spells it), or -1.
int spk_isa_parse(const char *name);

/// Whether this CPU (and its OS) can run path `isa`.
int spk_isa_available(int isa);

/// The fastest path this CPU can run.
int spk_best_isa(void);

/// The path used by every thread that has not forced one: the environment variable SPARROW_ISA if
/// it names a path this CPU can run, else the best one.
int spk_process_isa(void);

/// Changes the process path (benchmarks comparing paths in one run; call it while no kernel runs).
/// Returns `isa`, or -1 (and changes nothing) when the CPU cannot run it.
int spk_set_process_isa(int isa);

/// NULL when SPARROW_ISA is unset or usable; otherwise why it was ignored ("unknown ..." or
/// "not available ..."), for the caller to report as an error.
const char *spk_isa_env_error(void);

/// Forces path `isa` on the calling thread only (tests): -1 returns to the process path. Returns
/// the path now in force, or -1 (and changes nothing) when the CPU cannot run `isa`. Other threads,
/// pool workers included, keep the process path.
int spk_force_isa(int isa);

/// The path in force on the calling thread.
int spk_current_isa(void);

/// The best x86 path for the given CPUID and XCR0 values (cpuid(1).ecx, cpuid(7,0).ebx,
/// cpuid(7,0).ecx, xgetbv(0)); exposed so the dispatch rules can be tested with any CPU.
int spk_x86_isa_from_cpuid(uint32_t leaf1_ecx, uint32_t leaf7_ebx, uint32_t leaf7_ecx, uint64_t xcr0);

/// The best aarch64 path for Linux's AT_HWCAP and AT_HWCAP2 bits (tested like the above).
int spk_arm_isa_from_hwcap(uint64_t hwcap, uint64_t hwcap2);

/// Sums `bytes` (a multiple of 8) of memory as 64-bit words with the widest loads the CPU has:
/// the memory read bandwidth probe of the benchmarks.
uint64_t spk_read_sum(const void *data, size_t bytes);

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

/// SwiGLU in place: gate[i] = silu(gate[i]) * up[i] for i in [0, n), silu(g) = g / (1 + e^-g), with
/// an exponential within 2 ulp of e^x (vectorised on every path; NaN in gate stays NaN).
void spk_swiglu(size_t n, float *gate, const float *up);

/// gpt-oss's clamped SwiGLU in place: gate[i] = g * sigmoid(alpha * g) * (u + 1) with
/// g = min(gate[i], limit) and u = up[i] clamped to [-limit, limit].
void spk_clamped_swiglu(size_t n, float *gate, const float *up, float limit, float alpha);

/// The converter's measure of a group grid (docs/QUANT.md): for the weights w[0, n), each coded
/// q = round((w - m) / d) (ties away from zero) clamped to [0, 255], the sum of the squared
/// errors of the 4-bit reconstruction m + d · (16 · (q >> 4) + 7.5) plus a quarter of the 2-bit
/// one's, m + d · (64 · (q >> 6) + 31.5). d > 0; n a multiple of 16.
float spk_grid_error(const float *w, size_t n, float m, float d);

/// dst[t] = (float)src[t] for t in [0, n).
void spk_to_f32(const void *src, spk_dtype st, float *dst, size_t n);

/// dst[t] = src[t] rounded to nearest even in type `dt` (f32 copies).
void spk_from_f32(const float *src, void *dst, spk_dtype dt, size_t n);

// ---------------------------------------------------------------------------
// Matryoshka-quantized matrices (see docs/QUANT.md)
//
// Each row is cut into groups of `group` weights along the input dimension. A group has an 8-bit
// grid: min `m` and step `d` (two f16). A weight's 8-bit code q is stored as bit planes, most
// significant first: plane k holds the next widths[k] bits of q. Using the first p planes gives a
// code t of b = widths[0] + ... + widths[p-1] bits (q >> (8 - b)), reconstructed at the centre of
// its bucket: w = m + d * (t * 2^(8-b) + (2^(8-b) - 1) / 2).
//
// Packing: a plane is stored block by block, a block being 64 weights when group % 64 == 0,
// otherwise the group itself. Within a block of P weights and a plane of width W (2, 4 or 8 bits),
// byte j holds weights j + s * (P * W / 8) for s in [0, 8 / W), at bits [s * W, s * W + W).

/// A quantized matrix `[rows, cols]` viewed at some precision level.
typedef struct spk_qmatrix {
    size_t rows, cols, group;
    /// [rows][cols / group][2] f16 (min, step of the 8-bit grid).
    const uint16_t *scales;
    /// planes[k]: [rows][cols * widths[k] / 8] bytes.
    const uint8_t *planes[4];
    uint8_t widths[4];
    /// How many planes to use (1 ... 4); their widths add up to the level's bits.
    uint8_t nplanes;
    /// NULL for the uniform grid above. Otherwise an **E2M1 matrix** (MXFP4 weights kept as they
    /// are, docs/QUANT.md): group 64 (or 32: the portable paths only), levels of 2 or 4 bits whose
    /// codes are E2M1 codes (the 2-bit level their sign and top exponent bit), and per row and
    /// group one byte: bits 0-1 the shift k of the group's weights 0-31, bits 2-3 that of 32-63.
    /// Each code stands for the 8-bit code u = 128 + v · 2^(k+1) (v its E2M1 value), read on the
    /// group's 8-bit grid (m = -128 d).
    const uint8_t *shifts;
} spk_qmatrix;

/// Activations quantized for spk_qgemm: per row and group, int8 values, a scale and their sum.
typedef struct spk_qact {
    int8_t *q;        // [n][cols]
    float *scale;     // [n][cols / group]
    int32_t *sum;     // [n][cols / group]
    size_t n, cols, group;
} spk_qact;

/// Quantizes `n` rows of x (row stride ldx) into `a` (buffers sized by the caller).
void spk_quantize_act(const float *x, size_t n, size_t ldx, spk_qact *a);

/// y[i * ldy + j] = Σ_t x[i, t] · W[j, t] for j in [row0, row1), W quantized; `a` holds x quantized
/// by spk_quantize_act (used by the integer kernels; the float path reads x; may be NULL).
void spk_qgemm(const spk_qmatrix *w, const float *x, size_t n, size_t ldx, const spk_qact *a,
               size_t row0, size_t row1, float *y, size_t ldy);

/// Reference: the same with the weights dequantized to float and f32 activations, sequential sums.
void spk_qgemm_ref(const spk_qmatrix *w, const float *x, size_t n, size_t ldx,
                   size_t row0, size_t row1, float *y, size_t ldy);

/// Dequantizes row r of w into out[cols] (reference and embedding lookup).
void spk_qrow(const spk_qmatrix *w, size_t r, float *out);

/// Reference of the integer path: the exact sum, in double, that every integer kernel computes up to
/// float rounding, y = Σ_g x_scale[i,g] · (s[j,g] · Σ_t code·x_q + o[j,g] · Σ_t x_q).
void spk_qgemm_ref_int(const spk_qmatrix *w, const spk_qact *a, size_t row0, size_t row1, float *y, size_t ldy);

/// Whether spk_qgemm uses an integer kernel (int8 activations from spk_quantize_act) for this
/// matrix on the calling thread's path.
int spk_qgemm_is_integer(const spk_qmatrix *w);


#ifdef __cplusplus
}
#endif
#endif
