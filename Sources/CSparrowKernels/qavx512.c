// The AVX-512 VNNI integer path (groups of whole 64-weight blocks): rebuild 64 codes as bytes from
// the planes, u8 × s8 dot products with vpdpbusd, float accumulation per group.
#if defined(__x86_64__)
#include "qinternal.h"
#include <immintrin.h>

/// The same, 16 values per step (groups are multiples of 16); rounding to nearest even as lrintf.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq"))) void spk_quantize_act_avx512(const float *x, size_t n,
                                                                                   size_t ldx, spk_qact *a) {
    size_t G = a->group, groups = a->cols / G;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (size_t i = 0; i < n; i++) {
        for (size_t g = 0; g < groups; g++) {
            const float *xg = x + i * ldx + g * G;
            __m512 mx = _mm512_setzero_ps();
            for (size_t t = 0; t < G; t += 16) mx = _mm512_max_ps(mx, _mm512_and_ps(_mm512_loadu_ps(xg + t), absmask));
            float amax = _mm512_reduce_max_ps(mx);
            float scale = amax / 127.0f;
            __m512 inv = _mm512_set1_ps(scale > 0 ? 1.0f / scale : 0);
            int8_t *q = a->q + i * a->cols + g * G;
            __m512i sum = _mm512_setzero_si512();
            for (size_t t = 0; t < G; t += 16) {
                __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + t), inv));  // MXCSR: nearest even
                sum = _mm512_add_epi32(sum, v);
                _mm_storeu_si128((__m128i *)(q + t), _mm512_cvtsepi32_epi8(v));
            }
            a->scale[i * groups + g] = scale;
            a->sum[i * groups + g] = _mm512_reduce_add_epi32(sum);
        }
    }
}

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))

/// The 64 codes of block `blk` of one row, as bytes; an E2M1 matrix's (`rs` its row's shifts)
/// through its tables to 8-bit codes (vpshufb, weights 0-31 in the low two lanes, 32-63 above).
VNNI_TARGET __attribute__((always_inline)) static inline __m512i load_codes(const uint8_t *const *rowplanes, const uint8_t *widths,
                                             unsigned nplanes, const uint8_t *rs, size_t blk) {
    __m512i t = _mm512_setzero_si512();
    const __m512i shift2 = _mm512_set_epi64(0x0006000600060006LL, 0x0006000600060006LL, 0x0004000400040004LL,
                                            0x0004000400040004LL, 0x0002000200020002LL, 0x0002000200020002LL, 0, 0);
    const __m512i shift4 = _mm512_set_epi64(0x0004000400040004LL, 0x0004000400040004LL, 0x0004000400040004LL,
                                            0x0004000400040004LL, 0, 0, 0, 0);
    for (unsigned k = 0; k < nplanes; k++) {
        unsigned W = widths[k];
        __m512i p;
        if (W == 2) {
            __m128i v = _mm_loadu_si128((const __m128i *)(rowplanes[k] + blk * 16));
            p = _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i32x4(v), shift2), _mm512_set1_epi8(3));
        } else if (W == 4) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(rowplanes[k] + blk * 32));
            __m512i vv = _mm512_inserti64x4(_mm512_castsi256_si512(v), v, 1);
            p = _mm512_and_si512(_mm512_srlv_epi16(vv, shift4), _mm512_set1_epi8(15));
        } else {
            p = _mm512_loadu_si512((const void *)(rowplanes[k] + blk * 64));
        }
        // t < 2^(8-W) here, so a 16-bit shift cannot carry into the neighbouring byte.
        t = k == 0 ? p : _mm512_or_si512(_mm512_slli_epi16(t, W), p);
    }
    if (rs) {
        unsigned bits = qm_widths_bits(widths, nplanes);
        uint8_t shift = rs[blk];
        __m256i ta = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)qm_e2m1_table(bits, shift)));
        __m256i tb = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)qm_e2m1_table(bits, shift >> 2)));
        t = _mm512_shuffle_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(ta), tb, 1), t);
    }
    return t;
}

#define TOKEN_CHUNK 8

/// Per-group factors of one row for groups [g0, g0 + ng), 16 groups per vector step:
/// sv[g] = x_scale · d · 2^(8-b) (multiplies the integer dot product), and the row's offset term
/// Σ x_scale · Σx_q · (m + d · half) accumulated into *off.
VNNI_TARGET static inline void group_factors(const uint16_t *sc, const spk_qact *a, size_t g0, size_t ng,
                                             float step, float half, float *sv, __m512 *off) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (size_t g = 0; g < ng; g += 16) {
        size_t cnt = ng - g < 16 ? ng - g : 16;
        __mmask16 m16 = (__mmask16)((1u << cnt) - 1);
        __mmask32 m32 = (__mmask32)(cnt == 16 ? 0xFFFFFFFFu : ((1u << (2 * cnt)) - 1));
        __m512i h = _mm512_maskz_loadu_epi16(m32, sc + 2 * (g0 + g));
        __m512 lo = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        __m512 hi = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
        __m512 m = _mm512_permutex2var_ps(lo, even, hi);
        __m512 d = _mm512_permutex2var_ps(lo, odd, hi);
        __m512 xs = _mm512_maskz_loadu_ps(m16, a->scale + g0 + g);
        __m512 xsum = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m16, a->sum + g0 + g));
        _mm512_storeu_ps(sv + g, _mm512_mul_ps(_mm512_mul_ps(xs, d), _mm512_set1_ps(step)));
        *off = _mm512_fmadd_ps(_mm512_fmadd_ps(d, _mm512_set1_ps(half), m), _mm512_mul_ps(xs, xsum), *off);
    }
}

/// Decode (one token): rows [j0, j1). Group factors are computed 16 groups per vector step; the
/// inner loop per 64 weights is: rebuild codes, one vpdpbusd, one convert, one FMA.
VNNI_TARGET __attribute__((always_inline)) static inline void decode_rows_impl(
    const spk_qmatrix *w, const spk_qact *a, size_t j0, size_t j1, float *y, float step, float half,
    const unsigned nplanes, const uint8_t *widths, const size_t fixed_bpg, const int table) {
    size_t G = w->group, groups = w->cols / G, bpg = fixed_bpg ? fixed_bpg : G / 64;
    float sv[256 + 16] __attribute__((aligned(64)));
    for (size_t j = j0; j < j1; j++) {
        const uint8_t *rowplanes[4];
        for (unsigned k = 0; k < nplanes; k++) rowplanes[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
        const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
        const uint16_t *sc = w->scales + j * groups * 2;
        __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(), off = _mm512_setzero_ps();
        for (size_t g0 = 0; g0 < groups; g0 += 256) {
            size_t ng = groups - g0 < 256 ? groups - g0 : 256;
            group_factors(sc, a, g0, ng, step, half, sv, &off);
            size_t g = 0;
            for (; g + 2 <= ng; g += 2) {  // two groups per step, two accumulators: no FMA chain stall
                __m512i isum0 = _mm512_setzero_si512(), isum1 = _mm512_setzero_si512();
                for (size_t b = 0; b < bpg; b++) {
                    size_t blk0 = (g0 + g) * bpg + b, blk1 = blk0 + bpg;
                    __m512i t0 = load_codes(rowplanes, widths, nplanes, rs, blk0);
                    __m512i t1 = load_codes(rowplanes, widths, nplanes, rs, blk1);
                    isum0 = _mm512_dpbusd_epi32(isum0, t0, _mm512_loadu_si512((const void *)(a->q + blk0 * 64)));
                    isum1 = _mm512_dpbusd_epi32(isum1, t1, _mm512_loadu_si512((const void *)(a->q + blk1 * 64)));
                }
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum0), _mm512_set1_ps(sv[g]), acc);
                acc2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum1), _mm512_set1_ps(sv[g + 1]), acc2);
            }
            for (; g < ng; g++) {
                __m512i isum = _mm512_setzero_si512();
                for (size_t b = 0; b < bpg; b++) {
                    size_t blk = (g0 + g) * bpg + b;
                    __m512i t = load_codes(rowplanes, widths, nplanes, rs, blk);
                    isum = _mm512_dpbusd_epi32(isum, t, _mm512_loadu_si512((const void *)(a->q + blk * 64)));
                }
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(sv[g]), acc);
            }
        }
        y[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2)) + _mm512_reduce_add_ps(off);
    }
}

/// Σ codes·x_q for `cn` tokens over groups [g0, g0 + ng) of one row, scaled into acc[i].
VNNI_TARGET __attribute__((always_inline)) static inline void token_chunk_dots(
    const uint8_t *const *rowplanes, const uint8_t *widths, const unsigned nplanes, const uint8_t *rs,
    const int8_t *xq0, size_t ldq,
    float (*xsd)[256 + 16], size_t g0, size_t ng, size_t bpg, const size_t cn, __m512 *acc, __m512i *codes) {
    size_t G = bpg * 64;
    for (size_t g = 0; g < ng; g++) {
        for (size_t b = 0; b < bpg; b++) codes[b] = load_codes(rowplanes, widths, nplanes, rs, (g0 + g) * bpg + b);
        for (size_t i = 0; i < cn; i++) {
            const int8_t *xq = xq0 + i * ldq + g * G;
            __m512i isum = _mm512_setzero_si512();
            for (size_t b = 0; b < bpg; b++)
                isum = _mm512_dpbusd_epi32(isum, codes[b], _mm512_loadu_si512((const void *)(xq + b * 64)));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(xsd[i][g]), acc[i]);
        }
    }
}

VNNI_TARGET __attribute__((always_inline)) static inline void qgemm_vnni_impl(
    const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y, size_t ldy,
    const unsigned nplanes, const uint8_t *widths, const size_t fixed_bpg, const int table) {
    // fixed_bpg: blocks of 64 per group known at compile time (1 for the default group of 64), else 0.
    size_t G = w->group, groups = w->cols / G, bpg = fixed_bpg ? fixed_bpg : G / 64;
    unsigned bits = 0;
    for (unsigned k = 0; k < nplanes; k++) bits += widths[k];
    if (table) bits = 8;  // the table gives 8-bit codes
    float step = (float)(1u << (8 - bits)), half = (step - 1) * 0.5f;
    __m512i codes[64];  // one group's codes (group <= 4096)
    float xsd[TOKEN_CHUNK][256 + 16] __attribute__((aligned(64)));  // per token: x_scale · d · step per group
    if (n == 1) {
        decode_rows_impl(w, a, row0, row1, y, step, half, nplanes, widths, fixed_bpg, table);
        return;
    }
    for (size_t j = row0; j < row1; j++) {
        const uint8_t *rowplanes[4];
        for (unsigned k = 0; k < nplanes; k++) rowplanes[k] = w->planes[k] + j * (w->cols * widths[k] / 8);
        const uint8_t *rs = table ? qm_shift_row(w, j) : NULL;
        const uint16_t *sc = w->scales + j * groups * 2;
        // Tokens in chunks: a group's codes are unpacked once per chunk and reused by every token.
        // Per-(token, group) factors are computed 16 groups per vector step beforehand, so the inner
        // loop per token and 64 weights is one load, one vpdpbusd, one convert and one FMA.
        for (size_t i0 = 0; i0 < n; i0 += TOKEN_CHUNK) {
            size_t cn = n - i0 < TOKEN_CHUNK ? n - i0 : TOKEN_CHUNK;
            __m512 acc[TOKEN_CHUNK], off[TOKEN_CHUNK];
            for (size_t i = 0; i < cn; i++) { acc[i] = _mm512_setzero_ps(); off[i] = _mm512_setzero_ps(); }
            for (size_t g0 = 0; g0 < groups; g0 += 256) {
                size_t ng = groups - g0 < 256 ? groups - g0 : 256;
                for (size_t i = 0; i < cn; i++) {
                    spk_qact one = *a;
                    one.scale = a->scale + (i0 + i) * groups;
                    one.sum = a->sum + (i0 + i) * groups;
                    group_factors(sc, &one, g0, ng, step, half, xsd[i], &off[i]);
                }
                const int8_t *xq0 = a->q + i0 * a->cols + g0 * G;
                if (cn == TOKEN_CHUNK)  // constant trip count: accumulators stay in registers
                    token_chunk_dots(rowplanes, widths, nplanes, rs, xq0, a->cols, xsd, g0, ng, bpg, TOKEN_CHUNK, acc, codes);
                else
                    token_chunk_dots(rowplanes, widths, nplanes, rs, xq0, a->cols, xsd, g0, ng, bpg, cn, acc, codes);
            }
            for (size_t i = 0; i < cn; i++)
                y[(i0 + i) * ldy + j] = _mm512_reduce_add_ps(acc[i]) + _mm512_reduce_add_ps(off[i]);
        }
    }
}

SPK_DEFINE_PATTERNS(vnni, VNNI_TARGET, qgemm_vnni_impl)

void spk_qgemm_avx512(const spk_qmatrix *w, const spk_qact *a, size_t n, size_t row0, size_t row1, float *y,
                      size_t ldy) {
    vnni_dispatch(w, a, n, row0, row1, y, ldy);
}
#endif
