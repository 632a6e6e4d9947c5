// Included by qneon.c once per dot-product flavour (no include guard): the row-by-row integer
// kernel, decode and prefill. Parameters: QN_PREFIX (names), QN_TARGET (attribute), QN_DOT16(acc, s, x)
// (acc += 16 signed products as int32x4). Prefill takes one row × QN_TOKENS tokens at a time: each
// group's codes are rebuilt once and used by every token.
#define QN_CAT_(a, b) a##b
#define QN_CAT(a, b) QN_CAT_(a, b)
#define QN_FN(name) QN_CAT(QN_PREFIX, name)

QN_TARGET __attribute__((always_inline)) static inline int32x4_t QN_FN(_dot64)(const qn_codes *c, const int8_t *xq,
                                                                              const int eight, int32x4_t acc) {
    for (int i = 0; i < 4; i++) acc = QN_DOT16(acc, qn_signed(c->v[i], eight), vld1q_s8(xq + 16 * i));
    return acc;
}

QN_TARGET __attribute__((always_inline)) static inline void QN_FN(_impl)(const spk_qmatrix *w, const spk_qact *a,
                                                                        size_t n, size_t row0, size_t row1, float *y,
                                                                        size_t ldy, const unsigned np,
                                                                        const uint8_t *widths, const size_t fixed_bpg,
                                                                        const int table) {
    size_t G = w->group, groups = w->cols / G, bpg = fixed_bpg ? fixed_bpg : G / 64;
    unsigned bits = 0;
    for (unsigned k = 0; k < np; k++) bits += widths[k];
    if (table) bits = 8;  // the table gives 8-bit codes
    const int eight = bits == 8;
    float step = (float)(1u << (8 - bits)), offc = qm_signed_offc(bits);
    qn_codes codes[64];  // one group's codes (group <= 4096)
    float xsd[QN_TOKENS][QN_FACTOR_CHUNK];
    for (size_t j = row0; j < row1; j++) {
        const uint8_t *rp[4];
        for (unsigned k = 0; k < np; k++) rp[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
        const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
        const uint16_t *sc = w->scales + j * groups * 2;
        for (size_t i0 = 0; i0 < n; i0 += QN_TOKENS) {
            size_t cn = n - i0 < QN_TOKENS ? n - i0 : QN_TOKENS;
            float32x4_t acc[QN_TOKENS], off[QN_TOKENS];
            float offs[QN_TOKENS];
            for (size_t i = 0; i < cn; i++) {
                acc[i] = off[i] = vdupq_n_f32(0);
                offs[i] = 0;
            }
            for (size_t g0 = 0; g0 < groups; g0 += QN_FACTOR_CHUNK) {
                size_t ng = groups - g0 < QN_FACTOR_CHUNK ? groups - g0 : QN_FACTOR_CHUNK;
                for (size_t i = 0; i < cn; i++) {
                    size_t f = (i0 + i) * groups + g0;
                    qn_factors(sc + 2 * g0, a->scale + f, a->sum + f, ng, step, offc, xsd[i], &off[i], &offs[i]);
                }
                for (size_t g = 0; g < ng; g++) {
                    for (size_t b = 0; b < bpg; b++) codes[b] = qn_codes64(rp, widths, np, rs, (g0 + g) * bpg + b);
                    for (size_t i = 0; i < cn; i++) {
                        const int8_t *xq = a->q + (i0 + i) * a->cols + (g0 + g) * G;
                        int32x4_t isum = vdupq_n_s32(0);
                        for (size_t b = 0; b < bpg; b++) isum = QN_FN(_dot64)(&codes[b], xq + b * 64, eight, isum);
                        acc[i] = vfmaq_n_f32(acc[i], vcvtq_f32_s32(isum), xsd[i][g]);
                    }
                }
            }
            for (size_t i = 0; i < cn; i++)
                y[(i0 + i) * ldy + j] = vaddvq_f32(acc[i]) + vaddvq_f32(off[i]) + offs[i];
        }
    }
}

#undef QN_FN
#undef QN_CAT
#undef QN_CAT_
