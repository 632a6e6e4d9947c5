// The aarch64 integer paths (groups of whole 64-weight blocks): `neon` (SMULL/SMLAL pairs widened
// into int32 with SADALP), `dotprod` (SDOT, 16 products per instruction) and `i8mm` (SMMLA: a 2-row
// × 2-token tile per instruction for prefill; decode takes the dotprod kernel). Every product is
// signed × signed, so 8-bit codes are centred (qinternal.h).
#if defined(__aarch64__)
#include "qinternal.h"
#include <arm_neon.h>

#if defined(__clang__)
#define DOTPROD_TARGET __attribute__((target("dotprod")))
#define I8MM_TARGET __attribute__((target("dotprod,i8mm")))
#else
#define DOTPROD_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#define I8MM_TARGET __attribute__((target("arch=armv8.2-a+dotprod+i8mm")))
#endif
#define NEON_TARGET

enum { QN_TOKENS = 4, QN_FACTOR_CHUNK = 256 };

/// The 64 codes of a block: weights 0-15, 16-31, 32-47, 48-63.
typedef struct qn_codes {
    uint8x16_t v[4];
} qn_codes;

/// The codes of block `blk` of a row; an E2M1 matrix's (`rs` its row's shifts) through its tables
/// to 8-bit codes (TBL, one table per 32 weights).
__attribute__((always_inline)) static inline qn_codes qn_codes64(const uint8_t *const *rp, const uint8_t *widths,
                                                                 const unsigned np, const uint8_t *rs, size_t blk) {
    qn_codes t = {{vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0), vdupq_n_u8(0)}};
    for (unsigned k = 0; k < np; k++) {
        unsigned W = widths[k];
        uint8x16_t p[4];
        if (W == 2) {  // 16 bytes: weights j, j+16, j+32, j+48 at bits 0, 2, 4, 6 of byte j
            uint8x16_t v = vld1q_u8(rp[k] + blk * 16), m = vdupq_n_u8(3);
            p[0] = vandq_u8(v, m);
            p[1] = vandq_u8(vshrq_n_u8(v, 2), m);
            p[2] = vandq_u8(vshrq_n_u8(v, 4), m);
            p[3] = vshrq_n_u8(v, 6);
        } else if (W == 4) {  // 32 bytes: weights j, j+32 at bits 0, 4 of byte j
            uint8x16_t v0 = vld1q_u8(rp[k] + blk * 32), v1 = vld1q_u8(rp[k] + blk * 32 + 16), m = vdupq_n_u8(15);
            p[0] = vandq_u8(v0, m);
            p[1] = vandq_u8(v1, m);
            p[2] = vshrq_n_u8(v0, 4);
            p[3] = vshrq_n_u8(v1, 4);
        } else {
            for (int i = 0; i < 4; i++) p[i] = vld1q_u8(rp[k] + blk * 64 + 16 * i);
        }
        for (int i = 0; i < 4; i++)
            t.v[i] = k == 0 ? p[i] : vorrq_u8(vshlq_u8(t.v[i], vdupq_n_s8((int8_t)W)), p[i]);
    }
    if (rs) {
        unsigned bits = qm_widths_bits(widths, np);
        uint8x16_t ta = vld1q_u8(qm_e2m1_table(bits, rs[blk])), tb = vld1q_u8(qm_e2m1_table(bits, rs[blk] >> 2));
        t.v[0] = vqtbl1q_u8(ta, t.v[0]);
        t.v[1] = vqtbl1q_u8(ta, t.v[1]);
        t.v[2] = vqtbl1q_u8(tb, t.v[2]);
        t.v[3] = vqtbl1q_u8(tb, t.v[3]);
    }
    return t;
}

/// Codes as signed bytes: 8-bit codes centred (t - 128), narrower ones as they are (< 128).
__attribute__((always_inline)) static inline int8x16_t qn_signed(uint8x16_t c, const int eight) {
    return vreinterpretq_s8_u8(eight ? veorq_u8(c, vdupq_n_u8(0x80)) : c);
}

/// Per-group factors of one row and one token, 4 groups per step (as qavx2.c's group_factors).
__attribute__((always_inline)) static inline void qn_factors(const uint16_t *sc, const float *xs, const int32_t *xsum,
                                                             size_t ng, float step, float offc, float *sv,
                                                             float32x4_t *off, float *offs) {
    size_t g = 0;
    for (; g + 4 <= ng; g += 4) {
        uint16x4x2_t h = vld2_u16(sc + 2 * g);  // de-interleaves (m, d) pairs
        float32x4_t m = vcvt_f32_f16(vreinterpret_f16_u16(h.val[0])), d = vcvt_f32_f16(vreinterpret_f16_u16(h.val[1]));
        float32x4_t x = vld1q_f32(xs + g);
        float32x4_t xx = vmulq_f32(x, vcvtq_f32_s32(vld1q_s32(xsum + g)));
        vst1q_f32(sv + g, vmulq_n_f32(vmulq_f32(x, d), step));
        *off = vfmaq_f32(*off, vfmaq_n_f32(m, d, offc), xx);
    }
    for (; g < ng; g++) {
        float m = spk_half_to_float(sc[2 * g]), d = spk_half_to_float(sc[2 * g + 1]);
        sv[g] = xs[g] * d * step;
        *offs += (m + d * offc) * (xs[g] * (float)xsum[g]);
    }
}

/// Baseline NEON: 16 products as two SMULL/SMLAL halves (a pair is at most 2·128·127 < 2^15),
/// pairwise added into int32.
__attribute__((always_inline)) static inline int32x4_t qn_dot16_neon(int32x4_t acc, int8x16_t s, int8x16_t x) {
    int16x8_t p = vmull_s8(vget_low_s8(s), vget_low_s8(x));
    p = vmlal_high_s8(p, s, x);
    return vpadalq_s16(acc, p);
}

#define QN_PREFIX qn_neon
#define QN_TARGET NEON_TARGET
#define QN_DOT16 qn_dot16_neon
#include "qneon_rows.h"
#undef QN_PREFIX
#undef QN_TARGET
#undef QN_DOT16

#define QN_PREFIX qn_dotprod
#define QN_TARGET DOTPROD_TARGET
#define QN_DOT16 vdotq_s32
#include "qneon_rows.h"
#undef QN_PREFIX
#undef QN_TARGET
#undef QN_DOT16

SPK_DEFINE_PATTERNS(neon, NEON_TARGET, qn_neon_impl)
SPK_DEFINE_PATTERNS(dotprod, DOTPROD_TARGET, qn_dotprod_impl)

/// Two rows × two tokens per SMMLA: A = [row0 k0..7 | row1 k0..7], B = [tok0 k0..7 | tok1 k0..7],
/// the int32x4 result is (r0·t0, r0·t1, r1·t0, r1·t1). Rows or tokens left over take dotprod.
I8MM_TARGET __attribute__((always_inline)) static inline void qn_i8mm_impl(const spk_qmatrix *w, const spk_qact *a,
                                                                          size_t n, size_t row0, size_t row1,
                                                                          float *y, size_t ldy, const unsigned np,
                                                                          const uint8_t *widths,
                                                                          const size_t fixed_bpg, const int table) {
    if (n < 2) {
        dotprod_dispatch(w, a, n, row0, row1, y, ldy);
        return;
    }
    size_t G = w->group, groups = w->cols / G, bpg = fixed_bpg ? fixed_bpg : G / 64;
    unsigned bits = 0;
    for (unsigned k = 0; k < np; k++) bits += widths[k];
    if (table) bits = 8;  // the table gives 8-bit codes
    const int eight = bits == 8;
    float step = (float)(1u << (8 - bits)), offc = qm_signed_offc(bits);
    size_t j = row0;
    for (; j + 2 <= row1; j += 2) {
        const uint8_t *rp0[4], *rp1[4];
        for (unsigned k = 0; k < np; k++) {
            rp0[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
            rp1[k] = rp0[k] + w->cols * widths[k] / 8;
        }
        const uint8_t *rs0 = table ? qm_shift_row(w, j) : NULL, *rs1 = table ? qm_shift_row(w, j + 1) : NULL;
        const uint16_t *sc0 = w->scales + j * groups * 2, *sc1 = sc0 + groups * 2;
        size_t i = 0;
        for (; i + 2 <= n; i += 2) {
            const int8_t *x0 = a->q + i * a->cols, *x1 = x0 + a->cols;
            const float *xs0 = a->scale + i * groups, *xs1 = xs0 + groups;
            const int32_t *xsum0 = a->sum + i * groups, *xsum1 = xsum0 + groups;
            float32x4_t acc = vdupq_n_f32(0), off = vdupq_n_f32(0);
            for (size_t g = 0; g < groups; g++) {
                int32x4_t isum = vdupq_n_s32(0);
                for (size_t b = 0; b < bpg; b++) {
                    size_t blk = g * bpg + b;
                    qn_codes c0 = qn_codes64(rp0, widths, np, rs0, blk), c1 = qn_codes64(rp1, widths, np, rs1, blk);
                    for (int q = 0; q < 4; q++) {
                        int64x2_t s0 = vreinterpretq_s64_s8(qn_signed(c0.v[q], eight));
                        int64x2_t s1 = vreinterpretq_s64_s8(qn_signed(c1.v[q], eight));
                        int64x2_t xa = vreinterpretq_s64_s8(vld1q_s8(x0 + blk * 64 + 16 * q));
                        int64x2_t xb = vreinterpretq_s64_s8(vld1q_s8(x1 + blk * 64 + 16 * q));
                        isum = vmmlaq_s32(isum, vreinterpretq_s8_s64(vzip1q_s64(s0, s1)),
                                          vreinterpretq_s8_s64(vzip1q_s64(xa, xb)));
                        isum = vmmlaq_s32(isum, vreinterpretq_s8_s64(vzip2q_s64(s0, s1)),
                                          vreinterpretq_s8_s64(vzip2q_s64(xa, xb)));
                    }
                }
                float m0 = spk_half_to_float(sc0[2 * g]), d0 = spk_half_to_float(sc0[2 * g + 1]);
                float m1 = spk_half_to_float(sc1[2 * g]), d1 = spk_half_to_float(sc1[2 * g + 1]);
                float dv[4] = {d0, d0, d1, d1}, xv[4] = {xs0[g], xs1[g], xs0[g], xs1[g]};
                float ov[4] = {m0 + d0 * offc, m0 + d0 * offc, m1 + d1 * offc, m1 + d1 * offc};
                float xx[4] = {xs0[g] * (float)xsum0[g], xs1[g] * (float)xsum1[g], xs0[g] * (float)xsum0[g],
                               xs1[g] * (float)xsum1[g]};
                float32x4_t sv = vmulq_n_f32(vmulq_f32(vld1q_f32(dv), vld1q_f32(xv)), step);
                acc = vfmaq_f32(acc, vcvtq_f32_s32(isum), sv);
                off = vfmaq_f32(off, vld1q_f32(ov), vld1q_f32(xx));
            }
            float r[4];
            vst1q_f32(r, vaddq_f32(acc, off));
            y[i * ldy + j] = r[0];
            y[(i + 1) * ldy + j] = r[1];
            y[i * ldy + j + 1] = r[2];
            y[(i + 1) * ldy + j + 1] = r[3];
        }
        if (i < n) {  // the last token
            spk_qact rest = *a;
            rest.q += i * a->cols;
            rest.scale += i * groups;
            rest.sum += i * groups;
            rest.n = n - i;
            dotprod_dispatch(w, &rest, n - i, j, j + 2, y + i * ldy, ldy);
        }
    }
    if (j < row1) dotprod_dispatch(w, a, n, j, row1, y, ldy);
}

SPK_DEFINE_PATTERNS(i8mm, I8MM_TARGET, qn_i8mm_impl)

void spk_qgemm_neon(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy) {
    neon_dispatch(w, a, n, row0, row1, y, ldy);
}

void spk_qgemm_dotprod(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                       size_t ldy) {
    dotprod_dispatch(w, a, n, row0, row1, y, ldy);
}

void spk_qgemm_i8mm(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy) {
    i8mm_dispatch(w, a, n, row0, row1, y, ldy);
}

/// As spk_quantize_act_portable, 16 values per step; FCVTNS rounds to nearest even as lrintf does.
void spk_quantize_act_neon(const float *x, size_t n, size_t ldx, spk_qact *a) {
    size_t G = a->group, groups = a->cols / G;
    for (size_t i = 0; i < n; i++) {
        for (size_t g = 0; g < groups; g++) {
            const float *xg = x + i * ldx + g * G;
            float32x4_t mx = vdupq_n_f32(0);
            for (size_t t = 0; t < G; t += 4) mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(xg + t)));
            float scale = vmaxvq_f32(mx) / 127.0f;
            float inv = scale > 0 ? 1.0f / scale : 0;
            int8_t *q = a->q + i * a->cols + g * G;
            int32x4_t sum = vdupq_n_s32(0);
            for (size_t t = 0; t < G; t += 16) {
                int32x4_t v[4];
                for (int k = 0; k < 4; k++) {
                    v[k] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(xg + t + 4 * k), inv));
                    sum = vaddq_s32(sum, v[k]);
                }
                int16x8_t h0 = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
                int16x8_t h1 = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
                vst1q_s8(q + t, vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1)));
            }
            a->scale[i * groups + g] = scale;
            a->sum[i * groups + g] = vaddvq_s32(sum);
        }
    }
}
#endif
