// The AVX2 integer path (groups of whole 64-weight blocks): 64 codes rebuilt from the planes into
// two byte vectors, u8 × s8 products with vpmaddubsw, pairs summed to int32 with vpmaddwd, float
// accumulation per group. 8-bit codes are centred (t - 128) and multiplied with the sign trick,
// |t - 128| × ±x, so no pair of products can saturate 16 bits (qinternal.h).
#if defined(__x86_64__)
#include "qinternal.h"
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE AVX2_TARGET __attribute__((always_inline)) static inline

enum { TOKEN_CHUNK = 8, FACTOR_CHUNK = 256 };

AVX2_INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/// As spk_quantize_act_portable, 16 values per step (groups are multiples of 16); the same
/// rounding (nearest even), so the same bytes.
AVX2_TARGET void spk_quantize_act_avx2(const float *x, size_t n, size_t ldx, spk_qact *a) {
    size_t G = a->group, groups = a->cols / G;
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (size_t i = 0; i < n; i++) {
        for (size_t g = 0; g < groups; g++) {
            const float *xg = x + i * ldx + g * G;
            __m256 mx = _mm256_setzero_ps();
            for (size_t t = 0; t < G; t += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(xg + t), absmask));
            float scale = hmax_ps(mx) / 127.0f;
            __m256 inv = _mm256_set1_ps(scale > 0 ? 1.0f / scale : 0);
            int8_t *q = a->q + i * a->cols + g * G;
            __m256i sum = _mm256_setzero_si256();
            for (size_t t = 0; t < G; t += 16) {
                __m256i v0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + t), inv));
                __m256i v1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + t + 8), inv));
                sum = _mm256_add_epi32(sum, _mm256_add_epi32(v0, v1));
                __m256i p16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8);
                __m128i p8 = _mm_packs_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1));
                _mm_storeu_si128((__m128i *)(q + t), p8);
            }
            a->scale[i * groups + g] = scale;
            a->sum[i * groups + g] = hsum_epi32(sum);
        }
    }
}

/// The 64 codes of block `blk` of a row: weights 0-31 in *lo, 32-63 in *hi; an E2M1 matrix's (`rs`
/// its row's shifts) through its tables, one per half, to 8-bit codes (vpshufb).
AVX2_INLINE void codes64(const uint8_t *const *rp, const uint8_t *widths, const unsigned np, const uint8_t *rs,
                         size_t blk, __m256i *lo, __m256i *hi) {
    const __m256i m2 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(15);
    __m256i tl = _mm256_setzero_si256(), th = tl;
    for (unsigned k = 0; k < np; k++) {
        unsigned W = widths[k];
        __m256i pl, ph;
        if (W == 2) {  // 16 bytes: weights j, j+16, j+32, j+48 at bits 0, 2, 4, 6 of byte j
            __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(rp[k] + blk * 16)));
            pl = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2)), m2);
            ph = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6)), m2);
        } else if (W == 4) {  // 32 bytes: weights j, j+32 at bits 0, 4 of byte j
            __m256i v = _mm256_loadu_si256((const __m256i *)(rp[k] + blk * 32));
            pl = _mm256_and_si256(v, m4);
            ph = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        } else {
            pl = _mm256_loadu_si256((const __m256i *)(rp[k] + blk * 64));
            ph = _mm256_loadu_si256((const __m256i *)(rp[k] + blk * 64 + 32));
        }
        if (k == 0) {
            tl = pl;
            th = ph;
        } else {  // t < 2^(8-W): a 16-bit shift carries nothing into the neighbouring byte
            tl = _mm256_or_si256(_mm256_slli_epi16(tl, W), pl);
            th = _mm256_or_si256(_mm256_slli_epi16(th, W), ph);
        }
    }
    if (rs) {
        unsigned bits = qm_widths_bits(widths, np);
        uint8_t shift = rs[blk];
        __m256i ta = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)qm_e2m1_table(bits, shift)));
        __m256i tb = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)qm_e2m1_table(bits, shift >> 2)));
        tl = _mm256_shuffle_epi8(ta, tl);
        th = _mm256_shuffle_epi8(tb, th);
    }
    *lo = tl;
    *hi = th;
}

/// Σ t·x_q over one block as 8 int32 lanes. Below 8 bits a pair of products is at most
/// 63·127·2 and two such vectors add up within int16; 8-bit codes take the centred sign trick.
AVX2_INLINE __m256i dot64(__m256i lo, __m256i hi, const int8_t *xq, const int eight) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i x0 = _mm256_loadu_si256((const __m256i *)xq), x1 = _mm256_loadu_si256((const __m256i *)(xq + 32));
    if (!eight) return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_maddubs_epi16(hi, x1)), ones);
    const __m256i c = _mm256_set1_epi8((char)0x80);
    __m256i sl = _mm256_xor_si256(lo, c), sh = _mm256_xor_si256(hi, c);
    __m256i pl = _mm256_maddubs_epi16(_mm256_sign_epi8(sl, sl), _mm256_sign_epi8(x0, sl));
    __m256i ph = _mm256_maddubs_epi16(_mm256_sign_epi8(sh, sh), _mm256_sign_epi8(x1, sh));
    return _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
}

/// The per-group factors of one row that no token changes, for `ng` groups (sc starts at the first),
/// 8 groups per step: ds[g] = d · step and mo[g] = m + d · offc.
AVX2_INLINE void row_factors(const uint16_t *sc, size_t ng, float step, float offc, float *ds, float *mo) {
    size_t g = 0;
    for (; g + 8 <= ng; g += 8) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(sc + 2 * g));  // (m, d) × 8
        __m256 p0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h)), p1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
        __m256 m = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(p0, p1, 0x88)), 0xD8));
        __m256 d = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(p0, p1, 0xDD)), 0xD8));
        _mm256_storeu_ps(ds + g, _mm256_mul_ps(d, _mm256_set1_ps(step)));
        _mm256_storeu_ps(mo + g, _mm256_fmadd_ps(d, _mm256_set1_ps(offc), m));
    }
    for (; g < ng; g++) {
        float m = _cvtsh_ss(sc[2 * g]), d = _cvtsh_ss(sc[2 * g + 1]);
        ds[g] = d * step;
        mo[g] = m + d * offc;
    }
}

/// One token's factors from its row's: sv[g] = x_scale · ds[g] (multiplies the integer dot product);
/// the offset term Σ x_scale · Σx_q · mo[g] accumulated into *off (8 groups per step) and *offs.
AVX2_INLINE void token_factors(const float *ds, const float *mo, const float *xs, const int32_t *xsum, size_t ng,
                               float *sv, __m256 *off, float *offs) {
    size_t g = 0;
    for (; g + 8 <= ng; g += 8) {
        __m256 x = _mm256_loadu_ps(xs + g);
        __m256 xx = _mm256_mul_ps(x, _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(xsum + g))));
        _mm256_storeu_ps(sv + g, _mm256_mul_ps(x, _mm256_loadu_ps(ds + g)));
        *off = _mm256_fmadd_ps(_mm256_loadu_ps(mo + g), xx, *off);
    }
    for (; g < ng; g++) {
        sv[g] = xs[g] * ds[g];
        *offs += mo[g] * (xs[g] * (float)xsum[g]);
    }
}

/// Decode (one token): rows [j0, j1), two groups per step into two accumulators.
AVX2_INLINE void decode_rows(const spk_qmatrix *w, const spk_qact *a, size_t j0, size_t j1, float *y, float step,
                             float offc, const unsigned np, const uint8_t *widths, const size_t bpg, const int eight,
                             const int table) {
    size_t groups = w->cols / w->group;
    float sv[FACTOR_CHUNK], ds[FACTOR_CHUNK], mo[FACTOR_CHUNK];
    for (size_t j = j0; j < j1; j++) {
        const uint8_t *rp[4];
        for (unsigned k = 0; k < np; k++) rp[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
        const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
        const uint16_t *sc = w->scales + j * groups * 2;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, off = acc0;
        float offs = 0;
        for (size_t g0 = 0; g0 < groups; g0 += FACTOR_CHUNK) {
            size_t ng = groups - g0 < FACTOR_CHUNK ? groups - g0 : FACTOR_CHUNK;
            row_factors(sc + 2 * g0, ng, step, offc, ds, mo);
            token_factors(ds, mo, a->scale + g0, a->sum + g0, ng, sv, &off, &offs);
            size_t g = 0;
            for (; g + 2 <= ng; g += 2) {
                __m256i i0 = _mm256_setzero_si256(), i1 = i0;
                for (size_t b = 0; b < bpg; b++) {
                    size_t blk0 = (g0 + g) * bpg + b, blk1 = blk0 + bpg;
                    __m256i l0, h0, l1, h1;
                    codes64(rp, widths, np, rs, blk0, &l0, &h0);
                    codes64(rp, widths, np, rs, blk1, &l1, &h1);
                    i0 = _mm256_add_epi32(i0, dot64(l0, h0, a->q + blk0 * 64, eight));
                    i1 = _mm256_add_epi32(i1, dot64(l1, h1, a->q + blk1 * 64, eight));
                }
                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(sv[g]), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_set1_ps(sv[g + 1]), acc1);
            }
            for (; g < ng; g++) {
                __m256i i0 = _mm256_setzero_si256();
                for (size_t b = 0; b < bpg; b++) {
                    size_t blk = (g0 + g) * bpg + b;
                    __m256i l0, h0;
                    codes64(rp, widths, np, rs, blk, &l0, &h0);
                    i0 = _mm256_add_epi32(i0, dot64(l0, h0, a->q + blk * 64, eight));
                }
                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_set1_ps(sv[g]), acc0);
            }
        }
        y[j] = hsum_ps(_mm256_add_ps(acc0, acc1)) + hsum_ps(off) + offs;
    }
}

/// Σ t·x_q over one block of centred 8-bit codes prepared once for many tokens: `s*` the centred
/// codes (signs), `a*` their magnitudes.
AVX2_INLINE __m256i dot64_prepared(__m256i al, __m256i sl, __m256i ah, __m256i sh, const int8_t *xq) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i x0 = _mm256_loadu_si256((const __m256i *)xq), x1 = _mm256_loadu_si256((const __m256i *)(xq + 32));
    __m256i pl = _mm256_maddubs_epi16(al, _mm256_sign_epi8(x0, sl));
    __m256i ph = _mm256_maddubs_epi16(ah, _mm256_sign_epi8(x1, sh));
    return _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
}

/// A tile of one row × `cn` tokens over groups [g0, g0 + ng): each group's codes are rebuilt once
/// (8-bit codes also centred and split into sign and magnitude once) and used by every token.
AVX2_INLINE void tile_dots(const uint8_t *const *rp, const uint8_t *widths, const unsigned np, const uint8_t *rs,
                           const int8_t *xq0,
                           size_t ldq, float (*xsd)[FACTOR_CHUNK], size_t g0, size_t ng, size_t bpg, const size_t cn,
                           __m256 *acc, __m256i *lo, __m256i *hi, __m256i *alo, __m256i *ahi, const int eight) {
    size_t G = bpg * 64;
    const __m256i c80 = _mm256_set1_epi8((char)0x80);
    for (size_t g = 0; g < ng; g++) {
        for (size_t b = 0; b < bpg; b++) {
            codes64(rp, widths, np, rs, (g0 + g) * bpg + b, &lo[b], &hi[b]);
            if (eight) {
                lo[b] = _mm256_xor_si256(lo[b], c80);
                hi[b] = _mm256_xor_si256(hi[b], c80);
                alo[b] = _mm256_abs_epi8(lo[b]);  // |-128| stays 0x80: 128 as the unsigned operand
                ahi[b] = _mm256_abs_epi8(hi[b]);
            }
        }
        for (size_t i = 0; i < cn; i++) {
            const int8_t *xq = xq0 + i * ldq + g * G;
            __m256i isum = eight ? dot64_prepared(alo[0], lo[0], ahi[0], hi[0], xq) : dot64(lo[0], hi[0], xq, 0);
            for (size_t b = 1; b < bpg; b++)
                isum = _mm256_add_epi32(isum, eight ? dot64_prepared(alo[b], lo[b], ahi[b], hi[b], xq + b * 64)
                                                    : dot64(lo[b], hi[b], xq + b * 64, 0));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(xsd[i][g]), acc[i]);
        }
    }
}

AVX2_INLINE void qgemm_avx2_impl(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1,
                                 float *y, size_t ldy, const unsigned np, const uint8_t *widths,
                                 const size_t fixed_bpg, const int table) {
    size_t G = w->group, groups = w->cols / G, bpg = fixed_bpg ? fixed_bpg : G / 64;
    unsigned bits = 0;
    for (unsigned k = 0; k < np; k++) bits += widths[k];
    if (table) bits = 8;  // the table gives 8-bit codes
    const int eight = bits == 8;
    float step = (float)(1u << (8 - bits)), offc = qm_signed_offc(bits);
    if (n == 1) {
        decode_rows(w, a, row0, row1, y, step, offc, np, widths, bpg, eight, table);
        return;
    }
    __m256i lo[64], hi[64], alo[64], ahi[64];  // one group's codes (group <= 4096)
    float xsd[TOKEN_CHUNK][FACTOR_CHUNK] __attribute__((aligned(32))), ds[FACTOR_CHUNK], mo[FACTOR_CHUNK];
    for (size_t j = row0; j < row1; j++) {
        const uint8_t *rp[4];
        for (unsigned k = 0; k < np; k++) rp[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
        const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
        const uint16_t *sc = w->scales + j * groups * 2;
        // Tokens in tiles of 8, then 4, 2, 1: a constant tile width keeps the accumulators in
        // registers (an expert at prefill sees a dozen tokens or so, so the tail tile matters).
        for (size_t i0 = 0; i0 < n;) {
            size_t left = n - i0, cn = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
            __m256 acc[TOKEN_CHUNK], off[TOKEN_CHUNK];
            float offs[TOKEN_CHUNK];
            for (size_t i = 0; i < cn; i++) {
                acc[i] = off[i] = _mm256_setzero_ps();
                offs[i] = 0;
            }
            for (size_t g0 = 0; g0 < groups; g0 += FACTOR_CHUNK) {
                size_t ng = groups - g0 < FACTOR_CHUNK ? groups - g0 : FACTOR_CHUNK;
                row_factors(sc + 2 * g0, ng, step, offc, ds, mo);  // once per tile, not per token
                for (size_t i = 0; i < cn; i++) {
                    size_t f = (i0 + i) * groups + g0;
                    token_factors(ds, mo, a->scale + f, a->sum + f, ng, xsd[i], &off[i], &offs[i]);
                }
                const int8_t *xq0 = a->q + i0 * a->cols + g0 * G;
                switch (cn) {
                case 8: tile_dots(rp, widths, np, rs, xq0, a->cols, xsd, g0, ng, bpg, 8, acc, lo, hi, alo, ahi, eight); break;
                case 4: tile_dots(rp, widths, np, rs, xq0, a->cols, xsd, g0, ng, bpg, 4, acc, lo, hi, alo, ahi, eight); break;
                case 2: tile_dots(rp, widths, np, rs, xq0, a->cols, xsd, g0, ng, bpg, 2, acc, lo, hi, alo, ahi, eight); break;
                default: tile_dots(rp, widths, np, rs, xq0, a->cols, xsd, g0, ng, bpg, 1, acc, lo, hi, alo, ahi, eight); break;
                }
            }
            for (size_t i = 0; i < cn; i++) y[(i0 + i) * ldy + j] = hsum_ps(acc[i]) + hsum_ps(off[i]) + offs[i];
            i0 += cn;
        }
    }
}

SPK_DEFINE_PATTERNS(avx2, AVX2_TARGET, qgemm_avx2_impl)

void spk_qgemm_avx2(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy) {
    avx2_dispatch(w, a, n, row0, row1, y, ldy);
}
#endif
