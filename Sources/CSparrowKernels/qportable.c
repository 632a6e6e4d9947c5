// The plain-C paths for quantized matrices: the float path (`scalar`: weights unpacked to floats,
// f32 activations) and the integer path (`portable`: int8 activations, codes unpacked a block at a
// time with word operations, dot products the compiler vectorises). Any group size.
#include "qinternal.h"

enum { TOKEN_CHUNK = 8, X_CHUNK = 4096 };

// clang's cost model picks 4 lanes for a u8 × s8 → int32 reduction (a 4-byte load per step); 16
// lanes (whole 16-byte loads) measured 2.4× faster. gcc vectorises it well on its own.
#if defined(__clang__)
#define VECTORIZE_16 _Pragma("clang loop vectorize_width(16) interleave_count(1)")
#else
#define VECTORIZE_16
#endif

void spk_qgemm_float_scalar(const spk_qmatrix *w, const float *x, size_t n, size_t ldx, size_t row0, size_t row1,
                            float *y, size_t ldy) {
    size_t G = w->group, groups = w->cols / G, P = qm_block(w), bpg = G / P;
    float step = (float)(1u << (8 - qm_code_bits(w))), half = (step - 1) * 0.5f;
    uint8_t codes[4096] __attribute__((aligned(64)));
    float wf[4096] __attribute__((aligned(64)));
    for (size_t j = row0; j < row1; j++) {
        const uint8_t *rp[4];
        for (unsigned k = 0; k < w->nplanes; k++) rp[k] = qm_plane_row(w, k, j);
        const uint16_t *sc = w->scales + j * groups * 2;
        for (size_t i = 0; i < n; i++) y[i * ldy + j] = 0;
        for (size_t g = 0; g < groups; g++) {
            float d = spk_half_to_float(sc[2 * g + 1]);
            float s = d * step, o = spk_half_to_float(sc[2 * g]) + d * half;
            for (size_t b = 0; b < bpg; b++) {
                size_t blk = g * bpg + b;
                qm_unpack_block(rp, w->widths, w->nplanes, P, blk, codes);
                if (w->shifts) qm_e2m1_block(codes, P, qm_bits(w), qm_shift_row(w, j)[blk]);
                for (size_t t = 0; t < P; t++) wf[t] = o + s * (float)codes[t];
                for (size_t i = 0; i < n; i++) {
                    const float *xi = x + i * ldx + blk * P;
                    float acc[16] = {0};
                    size_t t = 0;
                    for (; t + 16 <= P; t += 16)
                        for (int l = 0; l < 16; l++) acc[l] += xi[t + l] * wf[t + l];
                    float sum = 0;
                    for (int l = 0; l < 16; l++) sum += acc[l];
                    for (; t < P; t++) sum += xi[t] * wf[t];
                    y[i * ldy + j] += sum;
                }
            }
        }
    }
}

/// Σ c[t]·x[t] over 64 values: widening multiplies the compiler turns into vector code.
static inline int32_t dot64_u8s8(const uint8_t *c, const int8_t *x) {
    int32_t s = 0;
    VECTORIZE_16
    for (int t = 0; t < 64; t++) s += (int32_t)c[t] * (int32_t)x[t];
    return s;
}

static inline int32_t dot_u8s8(const uint8_t *c, const int8_t *x, size_t len) {
    int32_t s = 0;
    for (size_t t = 0; t < len; t++) s += (int32_t)c[t] * (int32_t)x[t];
    return s;
}

/// Any block size (groups that are not multiples of 64): a byte at a time.
static void qgemm_portable_any(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                               size_t ldy) {
    size_t G = w->group, groups = w->cols / G, P = qm_block(w), bpg = G / P;
    float step = (float)(1u << (8 - qm_code_bits(w))), half = (step - 1) * 0.5f;
    uint8_t codes[4096] __attribute__((aligned(64)));
    for (size_t j = row0; j < row1; j++) {
        const uint8_t *rp[4];
        for (unsigned k = 0; k < w->nplanes; k++) rp[k] = qm_plane_row(w, k, j);
        const uint16_t *sc = w->scales + j * groups * 2;
        // Tokens in chunks: a block's codes are unpacked once per chunk and used by each token.
        for (size_t i0 = 0; i0 < n; i0 += TOKEN_CHUNK) {
            size_t cn = n - i0 < TOKEN_CHUNK ? n - i0 : TOKEN_CHUNK;
            float acc[TOKEN_CHUNK] = {0};
            for (size_t g = 0; g < groups; g++) {
                float d = spk_half_to_float(sc[2 * g + 1]);
                float s = d * step, o = spk_half_to_float(sc[2 * g]) + d * half;
                int32_t isum[TOKEN_CHUNK] = {0};
                for (size_t b = 0; b < bpg; b++) {
                    size_t blk = g * bpg + b;
                    qm_unpack_block(rp, w->widths, w->nplanes, P, blk, codes);
                    if (w->shifts) qm_e2m1_block(codes, P, qm_bits(w), qm_shift_row(w, j)[blk]);
                    for (size_t i = 0; i < cn; i++) {
                        const int8_t *xq = a->q + (i0 + i) * a->cols + blk * P;
                        isum[i] += P == 64 ? dot64_u8s8(codes, xq) : dot_u8s8(codes, xq, P);
                    }
                }
                for (size_t i = 0; i < cn; i++) {
                    size_t f = (i0 + i) * groups + g;
                    acc[i] += a->scale[f] * (s * (float)isum[i] + o * (float)a->sum[f]);
                }
            }
            for (size_t i = 0; i < cn; i++) y[(i0 + i) * ldy + j] = acc[i];
        }
    }
}

/// The 64 codes of block `blk` into t[64]: qm_unpack64's 64-bit word operations, straight-line
/// code once the widths are constants (measured 2× faster than byte loops, which clang widens to
/// 32-bit lanes for the shifts); an E2M1 matrix's (`rs` its row's shifts) through its table.
__attribute__((always_inline)) static inline void unpack64(const uint8_t *const *rp, const uint8_t *widths,
                                                           const unsigned np, const uint8_t *rs, size_t blk,
                                                           uint8_t *restrict t) {
    qm_unpack64(rp, widths, np, blk, t);
    if (rs) qm_e2m1_block(t, 64, qm_widths_bits(widths, np), rs[blk]);
}

/// Σ t·x_q over one group (bpg blocks of 64, codes unpacked).
__attribute__((always_inline)) static inline int32_t group_dot(const uint8_t *codes, const int8_t *xq, size_t bpg) {
    int32_t isum = 0;
    for (size_t b = 0; b < bpg; b++) isum += dot64_u8s8(codes + 64 * b, xq + 64 * b);
    return isum;
}

/// One row for `cn` tokens (a constant for full chunks, so the accumulators stay in registers).
__attribute__((always_inline)) static inline void portable_row_tokens(const uint8_t *const *rp, const uint16_t *sc,
                                                                      const spk_qact *a, size_t i0, const size_t cn,
                                                                      size_t groups, size_t bpg, float step,
                                                                      float half, const unsigned np,
                                                                      const uint8_t *widths, const uint8_t *rs,
                                                                      uint8_t *codes, float *out) {
    size_t G = bpg * 64;
    float acc[TOKEN_CHUNK] = {0};
    for (size_t g = 0; g < groups; g++) {
        for (size_t b = 0; b < bpg; b++) unpack64(rp, widths, np, rs, g * bpg + b, codes + 64 * b);
        float d = spk_half_to_float(sc[2 * g + 1]);
        float s = d * step, o = spk_half_to_float(sc[2 * g]) + d * half;
        for (size_t i = 0; i < cn; i++) {
            size_t f = (i0 + i) * groups + g;
            int32_t isum = group_dot(codes, a->q + (i0 + i) * a->cols + g * G, bpg);
            acc[i] += a->scale[f] * (s * (float)isum + o * (float)a->sum[f]);
        }
    }
    for (size_t i = 0; i < cn; i++) out[i] = acc[i];
}

/// Σ c·x over 64 codes and activations already widened to int16 (one multiply-add per pair).
static inline int32_t dot64_u8s16(const uint8_t *c, const int16_t *x) {
    int32_t s = 0;
    VECTORIZE_16
    for (int t = 0; t < 64; t++) s += (int32_t)c[t] * (int32_t)x[t];
    return s;
}

/// Decode (one token), rows [row0, row1): the activations are widened to int16 once per chunk of
/// X_CHUNK values and shared by every row (widening them inside each dot product cost a third of
/// it); per chunk and row, the group factors first (a loop the compiler vectorises), then two
/// groups per step into two accumulators.
__attribute__((always_inline)) static inline void portable_decode(const spk_qmatrix *w, const spk_qact *a,
                                                                  size_t row0, size_t row1, float *y,
                                                                  const unsigned np, const uint8_t *widths,
                                                                  size_t bpg, float step, float half,
                                                                  const int table) {
    size_t G = bpg * 64, groups = w->cols / G, per = X_CHUNK / G;  // groups per chunk (G <= 4096)
    int16_t x16[X_CHUNK] __attribute__((aligned(16)));
    uint8_t codes[2 * 4096] __attribute__((aligned(16)));
    float sv[X_CHUNK / 64], ov[X_CHUNK / 64];
    for (size_t j = row0; j < row1; j++) y[j] = 0;
    for (size_t g0 = 0; g0 < groups; g0 += per) {
        size_t ng = groups - g0 < per ? groups - g0 : per;
        for (size_t t = 0; t < ng * G; t++) x16[t] = a->q[g0 * G + t];
        for (size_t j = row0; j < row1; j++) {
            const uint8_t *rp[4];
            for (unsigned k = 0; k < np; k++) rp[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
            const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
            const uint16_t *sc = w->scales + (j * groups + g0) * 2;
            for (size_t g = 0; g < ng; g++) {
                float d = spk_half_to_float(sc[2 * g + 1]), m = spk_half_to_float(sc[2 * g]);
                float xs = a->scale[g0 + g];
                sv[g] = xs * d * step;
                ov[g] = (m + d * half) * (xs * (float)a->sum[g0 + g]);
            }
            float acc0 = 0, acc1 = 0, off = 0;
            for (size_t g = 0; g < ng; g++) off += ov[g];
            size_t g = 0;
            for (; g + 2 <= ng; g += 2) {
                for (size_t b = 0; b < 2 * bpg; b++) unpack64(rp, widths, np, rs, (g0 + g) * bpg + b, codes + 64 * b);
                int32_t i0 = 0, i1 = 0;
                for (size_t b = 0; b < bpg; b++) {
                    i0 += dot64_u8s16(codes + 64 * b, x16 + g * G + 64 * b);
                    i1 += dot64_u8s16(codes + G + 64 * b, x16 + (g + 1) * G + 64 * b);
                }
                acc0 += sv[g] * (float)i0;
                acc1 += sv[g + 1] * (float)i1;
            }
            for (; g < ng; g++) {
                for (size_t b = 0; b < bpg; b++) unpack64(rp, widths, np, rs, (g0 + g) * bpg + b, codes + 64 * b);
                int32_t i0 = 0;
                for (size_t b = 0; b < bpg; b++) i0 += dot64_u8s16(codes + 64 * b, x16 + g * G + 64 * b);
                acc0 += sv[g] * (float)i0;
            }
            y[j] += acc0 + acc1 + off;
        }
    }
}

/// Groups of whole 64-weight blocks, specialised per plane pattern (SPK_DEFINE_PATTERNS).
__attribute__((always_inline)) static inline void qgemm_portable_impl(const spk_qmatrix *w, const spk_qact *a,
                                                                      size_t n, size_t row0, size_t row1, float *y,
                                                                      size_t ldy, const unsigned np,
                                                                      const uint8_t *widths, const size_t fixed_bpg,
                                                                      const int table) {
    size_t G = w->group, groups = w->cols / G, bpg = fixed_bpg ? fixed_bpg : G / 64;
    unsigned bits = 0;
    for (unsigned k = 0; k < np; k++) bits += widths[k];
    if (table) bits = 8;  // the table gives 8-bit codes
    float step = (float)(1u << (8 - bits)), half = (step - 1) * 0.5f;
    if (n == 1) {
        portable_decode(w, a, row0, row1, y, np, widths, bpg, step, half, table);
        return;
    }
    uint8_t codes[4096] __attribute__((aligned(16)));  // one group's codes
    for (size_t j = row0; j < row1; j++) {
        const uint8_t *rp[4];
        for (unsigned k = 0; k < np; k++) rp[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
        const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
        const uint16_t *sc = w->scales + j * groups * 2;
        // Tokens in chunks: a group's codes are unpacked once per chunk and used by each token.
        for (size_t i0 = 0; i0 < n; i0 += TOKEN_CHUNK) {
            size_t cn = n - i0 < TOKEN_CHUNK ? n - i0 : TOKEN_CHUNK;
            float out[TOKEN_CHUNK];
            if (cn == TOKEN_CHUNK)
                portable_row_tokens(rp, sc, a, i0, TOKEN_CHUNK, groups, bpg, step, half, np, widths, rs, codes, out);
            else
                portable_row_tokens(rp, sc, a, i0, cn, groups, bpg, step, half, np, widths, rs, codes, out);
            for (size_t i = 0; i < cn; i++) y[(i0 + i) * ldy + j] = out[i];
        }
    }
}

SPK_DEFINE_PATTERNS(portable, , qgemm_portable_impl)

void spk_qgemm_portable(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                        size_t ldy) {
    if (w->group % 64 == 0)
        portable_dispatch(w, a, n, row0, row1, y, ldy);
    else
        qgemm_portable_any(w, a, n, row0, row1, y, ldy);
}
