#ifndef SPARROW_QINTERNAL_H
#define SPARROW_QINTERNAL_H
// Shared by the quantized-matrix kernels (not part of the public header): the layout helpers, the
// integer path's arithmetic, and each path's entry point.
#include "sparrow_kernels.h"
#include <string.h>

/// An IEEE half (bits) as float, with integer operations: exact for every value, and no call into
/// a soft-float helper on CPUs without a conversion instruction.
static inline float spk_half_to_float(uint16_t h) {
    uint32_t em = h & 0x7fffu, sign = (uint32_t)(h & 0x8000u) << 16, u;
    float f;
    if (em >= 0x7c00u) {
        u = sign | 0x7f800000u | ((em & 0x3ffu) << 13);  // inf, NaN
    } else {
        u = em << 13;  // the half's exponent and mantissa in a float's low bits: 2^-112 of the value
        memcpy(&f, &u, 4);
        f *= 0x1p112f;  // exact, subnormal halves included
        memcpy(&u, &f, 4);
        u |= sign;
    }
    memcpy(&f, &u, 4);
    return f;
}

/// Weights per packing block: 64 when the group allows it, else the group.
static inline size_t qm_block(const spk_qmatrix *w) { return (w->group % 64 == 0) ? 64 : w->group; }

/// Bits of the first `np` planes of widths `widths` (constants in the specialised kernels).
static inline unsigned qm_widths_bits(const uint8_t *widths, unsigned np) {
    unsigned b = 0;
    for (unsigned k = 0; k < np; k++) b += widths[k];
    return b;
}

/// Bits of the level in use (sum of the used plane widths).
static inline unsigned qm_bits(const spk_qmatrix *w) { return qm_widths_bits(w->widths, w->nplanes); }

/// Bits of the codes the arithmetic sees: 8 for an E2M1 matrix (its table gives 8-bit codes).
static inline unsigned qm_code_bits(const spk_qmatrix *w) { return w->shifts ? 8 : qm_bits(w); }

/// The shift bytes of row r of an E2M1 matrix (one per group), NULL for a uniform one.
static inline const uint8_t *qm_shift_row(const spk_qmatrix *w, size_t r) {
    return w->shifts ? w->shifts + r * (w->cols / w->group) : NULL;
}

/// Row r of plane k.
static inline const uint8_t *qm_plane_row(const spk_qmatrix *w, unsigned k, size_t r) {
    return w->planes[k] + r * (w->cols * w->widths[k] / 8);
}

// The integer path. With x quantized per group to x_q (int8) and x_scale, and the weights of a
// group at `bits` being w = o + s · t (t the code, s = d · 2^(8-bits), o = m + d · (2^(8-bits) - 1)/2):
//   Σ_t w·x = x_scale · (s · Σ t·x_q + o · Σ x_q).
// Paths whose dot product is signed × signed store 8-bit codes centred, t - 128 (xor 0x80), and
// fold the centre into the offset: o' = o + 128 · s. Codes below 8 bits are < 128: never centred.

/// The offset factor of a signed-dot path at `bits`: w = m + d · (offc + step · t'), with t' the
/// code as such path multiplies it (8-bit codes centred: t' = t - 128).
static inline float qm_signed_offc(unsigned bits) {
    float step = (float)(1u << (8 - bits));
    return (step - 1) * 0.5f + (bits == 8 ? 128.0f * step : 0.0f);
}

/// E2M1 matrices (`shifts` set; docs/QUANT.md, "The MXFP4 level"): the 8-bit code u = 128 + n a
/// stored code stands for, by level (0: the 2-bit prefix, sign and top exponent bit; 1: the 4-bit
/// E2M1 code), then by the block's shift k: u = 128 + v · 2^(k+1) for the E2M1 value v; the 2-bit
/// prefix stands for v = ±0.75 (exponent bit 0: values 0 … 1.5; ±1 where k = 0, for an integer) or
/// ±3 (2 … 6), the least squared error on trained gpt-oss weights (docs/QUANT.md). The weight is
/// the 8-bit grid's m + d · u with m = −128 d, so every kernel goes on as with 8-bit codes.
static const uint8_t qm_e2m1_codes[2][4][16] __attribute__((aligned(16))) = {
    {{130, 134, 126, 122, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
     {131, 140, 125, 116, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
     {134, 152, 122, 104, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128},
     {140, 176, 116, 80, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128}},
    {{128, 129, 130, 131, 132, 134, 136, 140, 128, 127, 126, 125, 124, 122, 120, 116},
     {128, 130, 132, 134, 136, 140, 144, 152, 128, 126, 124, 122, 120, 116, 112, 104},
     {128, 132, 136, 140, 144, 152, 160, 176, 128, 124, 120, 116, 112, 104, 96, 80},
     {128, 136, 144, 152, 160, 176, 192, 224, 128, 120, 112, 104, 96, 80, 64, 32}},
};

/// The table of an E2M1 matrix's level of `bits` (2 or 4) for shift k (the low 2 bits of `k`).
static inline const uint8_t *qm_e2m1_table(unsigned bits, unsigned k) { return qm_e2m1_codes[bits == 4][k & 3]; }

/// Turns the P (32 or 64) stored codes of one block (= group) of an E2M1 matrix into 8-bit codes:
/// weights 0-31 take the shift in bits 0-1 of `shift`, weights 32-63 the one in bits 2-3.
static inline void qm_e2m1_block(uint8_t *codes, size_t P, unsigned bits, uint8_t shift) {
    const uint8_t *a = qm_e2m1_table(bits, shift), *b = qm_e2m1_table(bits, shift >> 2);
    for (size_t i = 0; i < P; i++) codes[i] = (i < 32 ? a : b)[codes[i] & 15];
}

/// 16 bytes as two 64-bit lanes (GNU C vector extension: SSE2 on x86-64, NEON on aarch64, pairs of
/// scalar words elsewhere).
typedef uint64_t qm_u64x2 __attribute__((vector_size(16)));

/// 64 codes of block `blk` of a row (planes `rp`), one byte each, with 64-bit lane operations on
/// 16-byte vectors. Within a block a plane of width W has byte j holding weights j + s·8W at bits
/// [sW, sW + W). Whole 16-byte stores: the dot product that loads them right after gets them
/// forwarded (narrower scalar stores stalled every load, measured 1.8× slower).
__attribute__((always_inline)) static inline void qm_unpack64(const uint8_t *const *rp, const uint8_t *widths,
                                                              unsigned np, size_t blk, uint8_t out[64]) {
    const qm_u64x2 m2 = {0x0303030303030303ull, 0x0303030303030303ull};
    const qm_u64x2 m4 = {0x0F0F0F0F0F0F0F0Full, 0x0F0F0F0F0F0F0F0Full};
    qm_u64x2 t[4] = {{0, 0}, {0, 0}, {0, 0}, {0, 0}};
    for (unsigned k = 0; k < np; k++) {
        unsigned W = widths[k];
        const uint8_t *p = rp[k] + blk * 8 * W;
        qm_u64x2 v[4];
        if (W == 2) {  // 16 bytes: weights j, j+16, j+32, j+48 at bits 0, 2, 4, 6 of byte j
            qm_u64x2 u;
            memcpy(&u, p, 16);
            for (int s = 0; s < 4; s++) v[s] = (u >> (2 * s)) & m2;
        } else if (W == 4) {  // 32 bytes: weights j, j+32 at bits 0, 4 of byte j
            qm_u64x2 u0, u1;
            memcpy(&u0, p, 16);
            memcpy(&u1, p + 16, 16);
            v[0] = u0 & m4;
            v[1] = u1 & m4;
            v[2] = (u0 >> 4) & m4;
            v[3] = (u1 >> 4) & m4;
        } else {
            memcpy(v, p, 64);
        }
        // t < 2^(8-W) in every byte, so shifting a 64-bit lane by W moves no bit into the next byte.
        for (int i = 0; i < 4; i++) t[i] = W == 8 ? v[i] : (t[i] << W) | v[i];
    }
    memcpy(out, t, 64);
}

/// The codes of a block of P weights (any block size), a byte at a time.
static inline void qm_unpack_block(const uint8_t *const *rp, const uint8_t *widths, unsigned np, size_t P,
                                   size_t blk, uint8_t *out) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (P == 64) {
        qm_unpack64(rp, widths, np, blk, out);
        return;
    }
#endif
    memset(out, 0, P);
    for (unsigned k = 0; k < np; k++) {
        unsigned W = widths[k], per = 8 / W, mask = (1u << W) - 1;
        size_t bytes = P * W / 8;
        const uint8_t *p = rp[k] + blk * bytes;
        for (size_t j = 0; j < bytes; j++)
            for (unsigned s = 0; s < per; s++)
                out[j + s * bytes] = (uint8_t)((out[j + s * bytes] << W) | ((p[j] >> (s * W)) & mask));
    }
}

// Each path's entry points (the dispatch in qkernels.c checks the CPU and the matrix first).
void spk_qgemm_float_scalar(const spk_qmatrix *w, const float *x, size_t n, size_t ldx, size_t row0, size_t row1,
                            float *y, size_t ldy);
void spk_qgemm_portable(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                        size_t ldy);
void spk_quantize_act_portable(const float *x, size_t n, size_t ldx, spk_qact *a);
#if defined(__x86_64__)
void spk_qgemm_avx2(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy);
void spk_quantize_act_avx2(const float *x, size_t n, size_t ldx, spk_qact *a);
void spk_qgemm_avx512(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                      size_t ldy);
void spk_quantize_act_avx512(const float *x, size_t n, size_t ldx, spk_qact *a);
#endif
#if defined(__aarch64__)
void spk_qgemm_neon(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy);
void spk_qgemm_dotprod(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                       size_t ldy);
void spk_qgemm_i8mm(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy);
void spk_quantize_act_neon(const float *x, size_t n, size_t ldx, spk_qact *a);
#endif

/// Defines PREFIX_dispatch(w, a, n, row0, row1, y, ldy): IMPL(w, a, n, row0, row1, y, ldy, nplanes,
/// widths, fixed_bpg, table) specialised for the usual plane patterns and the group of 64, so that
/// rebuilding codes is straight-line code (a loop over planes ran at half the speed); the generic
/// call for any other pattern. `table`: an E2M1 matrix (w->shifts set; its codes go through the
/// table to 8-bit codes), specialised for its three patterns. IMPL must be always_inline.
#define SPK_PATTERN_FN(PREFIX, TARGET, IMPL, NAME, NP, ...)                                                     \
    TARGET static void PREFIX##_##NAME(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0,          \
                                       size_t row1, float *y, size_t ldy) {                                     \
        static const uint8_t widths[4] = {__VA_ARGS__};                                                         \
        if (w->group == 64)                                                                                     \
            IMPL(w, a, n, row0, row1, y, ldy, NP, widths, 1, 0);                                                \
        else                                                                                                    \
            IMPL(w, a, n, row0, row1, y, ldy, NP, widths, 0, 0);                                                \
    }
#define SPK_TABLE_PATTERN_FN(PREFIX, TARGET, IMPL, NAME, NP, ...)                                               \
    TARGET static void PREFIX##_e2m1_##NAME(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0,     \
                                            size_t row1, float *y, size_t ldy) {                                \
        static const uint8_t widths[4] = {__VA_ARGS__};                                                         \
        IMPL(w, a, n, row0, row1, y, ldy, NP, widths, 1, 1);                                                    \
    }
#define SPK_DEFINE_PATTERNS(PREFIX, TARGET, IMPL)                                                               \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 2, 1, 2)                                                               \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 22, 2, 2, 2)                                                           \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 224, 3, 2, 2, 4)                                                       \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 4, 1, 4)                                                               \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 44, 2, 4, 4)                                                           \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 8, 1, 8)                                                               \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 222, 3, 2, 2, 2)                                                       \
    SPK_PATTERN_FN(PREFIX, TARGET, IMPL, 2222, 4, 2, 2, 2, 2)                                                   \
    SPK_TABLE_PATTERN_FN(PREFIX, TARGET, IMPL, 2, 1, 2)                                                         \
    SPK_TABLE_PATTERN_FN(PREFIX, TARGET, IMPL, 22, 2, 2, 2)                                                     \
    SPK_TABLE_PATTERN_FN(PREFIX, TARGET, IMPL, 4, 1, 4)                                                         \
    TARGET static void PREFIX##_dispatch(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0,        \
                                         size_t row1, float *y, size_t ldy) {                                   \
        unsigned key = 0;                                                                                       \
        for (unsigned k = 0; k < w->nplanes; k++) key = key * 10 + w->widths[k];                                \
        if (w->shifts) { /* group 64, 2 or 4 bits: spk_qgemm checked */                                         \
            switch (key) {                                                                                      \
            case 2: PREFIX##_e2m1_2(w, a, n, row0, row1, y, ldy); return;                                       \
            case 22: PREFIX##_e2m1_22(w, a, n, row0, row1, y, ldy); return;                                     \
            default: PREFIX##_e2m1_4(w, a, n, row0, row1, y, ldy); return;                                      \
            }                                                                                                   \
        }                                                                                                       \
        switch (key) {                                                                                          \
        case 2: PREFIX##_2(w, a, n, row0, row1, y, ldy); return;                                                \
        case 22: PREFIX##_22(w, a, n, row0, row1, y, ldy); return;                                              \
        case 224: PREFIX##_224(w, a, n, row0, row1, y, ldy); return;                                            \
        case 4: PREFIX##_4(w, a, n, row0, row1, y, ldy); return;                                                \
        case 44: PREFIX##_44(w, a, n, row0, row1, y, ldy); return;                                              \
        case 8: PREFIX##_8(w, a, n, row0, row1, y, ldy); return;                                                \
        case 222: PREFIX##_222(w, a, n, row0, row1, y, ldy); return;                                            \
        case 2222: PREFIX##_2222(w, a, n, row0, row1, y, ldy); return;                                          \
        default: IMPL(w, a, n, row0, row1, y, ldy, w->nplanes, w->widths, 0, 0); return;                        \
        }                                                                                                       \
    }

#endif
