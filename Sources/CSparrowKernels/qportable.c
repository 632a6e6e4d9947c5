// The plain-C paths for quantized matrices: the float path (`scalar`: weights unpacked to floats,
// f32 activations) and the integer path (`portable`: int8 activations, codes unpacked a block at a
// time with word operations, dot products the compiler vectorises). Any group size.
#include "qinternal.h"

enum { TOKEN_CHUNK = 8 };

void spk_qgemm_float_scalar(const spk_qmatrix *w, const float *x, size_t n, size_t ldx, size_t row0, size_t row1,
                            float *y, size_t ldy) {
    size_t G = w->group, groups = w->cols / G, P = qm_block(w), bpg = G / P;
    float step = (float)(1u << (8 - qm_bits(w))), half = (step - 1) * 0.5f;
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
    for (int t = 0; t < 64; t++) s += (int32_t)c[t] * (int32_t)x[t];
    return s;
}

static inline int32_t dot_u8s8(const uint8_t *c, const int8_t *x, size_t len) {
    int32_t s = 0;
    for (size_t t = 0; t < len; t++) s += (int32_t)c[t] * (int32_t)x[t];
    return s;
}

void spk_qgemm_portable(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                        size_t ldy) {
    size_t G = w->group, groups = w->cols / G, P = qm_block(w), bpg = G / P;
    float step = (float)(1u << (8 - qm_bits(w))), half = (step - 1) * 0.5f;
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
