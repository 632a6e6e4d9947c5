// Matryoshka-quantized matrices: the references, the activation quantizer, and the dispatch to
// each path (qportable.c, qavx2.c, qavx512.c, qneon.c).
#include "qinternal.h"
#include <math.h>

/// The b-bit code of weight `c` of row `r`, gathered bit plane by bit plane (the references only:
/// independent of the block unpacking the kernels use).
static inline unsigned code_at(const spk_qmatrix *w, size_t r, size_t c) {
    size_t P = qm_block(w);
    size_t blk = c / P, i = c % P;
    unsigned t = 0;
    for (unsigned k = 0; k < w->nplanes; k++) {
        unsigned W = w->widths[k];
        size_t bytes_per_block = P * W / 8;
        uint8_t byte = qm_plane_row(w, k, r)[blk * bytes_per_block + i % bytes_per_block];
        unsigned slot = (unsigned)(i / bytes_per_block);
        t = (t << W) | ((byte >> (slot * W)) & ((1u << W) - 1));
    }
    if (w->shifts) {
        uint8_t shift = qm_shift_row(w, r)[c / w->group];
        t = qm_e2m1_table(qm_bits(w), c % w->group < 32 ? shift : shift >> 2)[t & 15];
    }
    return t;
}

/// Scale and offset of group g of row r: w = o + s * t.
static inline void group_affine(const spk_qmatrix *w, size_t r, size_t g, float *s, float *o) {
    const uint16_t *sc = w->scales + (r * (w->cols / w->group) + g) * 2;
    float m = spk_half_to_float(sc[0]), d = spk_half_to_float(sc[1]);
    float step = (float)(1u << (8 - qm_code_bits(w)));
    *s = d * step;
    *o = m + d * (step - 1) * 0.5f;
}

void spk_qrow(const spk_qmatrix *w, size_t r, float *out) {
    size_t G = w->group, groups = w->cols / G, P = qm_block(w);
    const uint8_t *rp[4];
    for (unsigned k = 0; k < w->nplanes; k++) rp[k] = qm_plane_row(w, k, r);
    uint8_t codes[4096];
    for (size_t g = 0; g < groups; g++) {
        float s, o;
        group_affine(w, r, g, &s, &o);
        for (size_t b = 0; b < G / P; b++) {
            size_t blk = g * (G / P) + b;
            qm_unpack_block(rp, w->widths, w->nplanes, P, blk, codes);
            if (w->shifts) qm_e2m1_block(codes, P, qm_bits(w), qm_shift_row(w, r)[blk]);
            for (size_t i = 0; i < P; i++) out[blk * P + i] = o + s * (float)codes[i];
        }
    }
}

void spk_qgemm_ref(const spk_qmatrix *w, const float *x, size_t n, size_t ldx,
                   size_t row0, size_t row1, float *y, size_t ldy) {
    size_t G = w->group, groups = w->cols / G;
    for (size_t j = row0; j < row1; j++) {
        for (size_t i = 0; i < n; i++) {
            float acc = 0;
            for (size_t g = 0; g < groups; g++) {
                float s, o;
                group_affine(w, j, g, &s, &o);
                for (size_t t = 0; t < G; t++)
                    acc += x[i * ldx + g * G + t] * (o + s * (float)code_at(w, j, g * G + t));
            }
            y[i * ldy + j] = acc;
        }
    }
}

void spk_qgemm_ref_int(const spk_qmatrix *w, const spk_qact *a, size_t row0, size_t row1, float *y, size_t ldy) {
    size_t G = w->group, groups = w->cols / G;
    for (size_t j = row0; j < row1; j++) {
        for (size_t i = 0; i < a->n; i++) {
            double acc = 0;
            for (size_t g = 0; g < groups; g++) {
                float s, o;
                group_affine(w, j, g, &s, &o);
                int64_t dot = 0;
                for (size_t t = 0; t < G; t++)
                    dot += (int64_t)code_at(w, j, g * G + t) * a->q[i * a->cols + g * G + t];
                double xs = a->scale[i * groups + g];
                acc += xs * ((double)s * (double)dot + (double)o * (double)a->sum[i * groups + g]);
            }
            y[i * ldy + j] = (float)acc;
        }
    }
}

void spk_quantize_act_portable(const float *x, size_t n, size_t ldx, spk_qact *a) {
    size_t G = a->group, groups = a->cols / G;
    for (size_t i = 0; i < n; i++) {
        for (size_t g = 0; g < groups; g++) {
            const float *xg = x + i * ldx + g * G;
            float amax = 0;
            for (size_t t = 0; t < G; t++) amax = fmaxf(amax, fabsf(xg[t]));
            float scale = amax / 127.0f;
            float inv = scale > 0 ? 1.0f / scale : 0;
            int8_t *q = a->q + i * a->cols + g * G;
            int32_t sum = 0;
            for (size_t t = 0; t < G; t++) {
                int v = (int)lrintf(xg[t] * inv);  // nearest even, as the SIMD converts
                q[t] = (int8_t)v;
                sum += v;
            }
            a->scale[i * groups + g] = scale;
            a->sum[i * groups + g] = sum;
        }
    }
}

void spk_quantize_act(const float *x, size_t n, size_t ldx, spk_qact *a) {
    int isa = spk_current_isa();
    if (a->group % 16 == 0) {
#if defined(__x86_64__)
        if (isa == SPK_ISA_AVX512) { spk_quantize_act_avx512(x, n, ldx, a); return; }
        if (isa == SPK_ISA_AVX2) { spk_quantize_act_avx2(x, n, ldx, a); return; }
#endif
#if defined(__aarch64__)
        if (isa >= SPK_ISA_NEON) { spk_quantize_act_neon(x, n, ldx, a); return; }
#endif
    }
    (void)isa;
    spk_quantize_act_portable(x, n, ldx, a);
}

static int widths_supported(const spk_qmatrix *w) {
    if (w->nplanes < 1 || w->nplanes > 4 || qm_bits(w) > 8) return 0;
    for (unsigned k = 0; k < w->nplanes; k++)
        if (w->widths[k] != 2 && w->widths[k] != 4 && w->widths[k] != 8) return 0;
    // E2M1 matrices: 2- or 4-bit codes in groups of 32 or 64 (anything else takes the float path,
    // whose table lookup masks the code).
    return !w->shifts || ((w->group == 64 || w->group == 32) && (qm_bits(w) == 2 || qm_bits(w) == 4));
}

int spk_qgemm_is_integer(const spk_qmatrix *w) {
    return spk_current_isa() != SPK_ISA_SCALAR && widths_supported(w);
}

void spk_qgemm(const spk_qmatrix *w, const float *x, size_t n, size_t ldx, const spk_qact *a,
               size_t row0, size_t row1, float *y, size_t ldy) {
    if (row0 >= row1 || n == 0) return;
    if (!a || !spk_qgemm_is_integer(w)) {
        spk_qgemm_float_scalar(w, x, n, ldx, row0, row1, y, ldy);
        return;
    }
    int isa = spk_current_isa();
    if (w->group % 64 == 0) {  // the SIMD paths work on whole 64-weight blocks
        switch (isa) {
#if defined(__x86_64__)
        case SPK_ISA_AVX512: spk_qgemm_avx512(w, a, n, row0, row1, y, ldy); return;
        case SPK_ISA_AVX2: spk_qgemm_avx2(w, a, n, row0, row1, y, ldy); return;
#endif
#if defined(__aarch64__)
        case SPK_ISA_I8MM: spk_qgemm_i8mm(w, a, n, row0, row1, y, ldy); return;
        case SPK_ISA_DOTPROD: spk_qgemm_dotprod(w, a, n, row0, row1, y, ldy); return;
        case SPK_ISA_NEON: spk_qgemm_neon(w, a, n, row0, row1, y, ldy); return;
#endif
        default: break;
        }
    }
    spk_qgemm_portable(w, a, n, row0, row1, y, ldy);
}
