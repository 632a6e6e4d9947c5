// The kernels' own test program (no Swift needed): every path this CPU can run, forced one after
// the other, against references computed here from the codes and scales the test chose, on ragged
// shapes, every level pattern, decode and prefill, row ranges; the activation quantizer of each
// path against the portable one byte for byte; the dispatch rules on made-up CPUs; the float GEMM,
// the SwiGLU activations, the worker pool and CRC-32C. Built natively and, cross-compiled, run
// under qemu-aarch64 by Tests/Kernels/run.sh.
//   kernel_test                     run everything
//   kernel_test --expect-env-error  only check that SPARROW_ISA (set by the caller) was refused
//   kernel_test --expect-process P  only check that SPARROW_ISA made P the process path
#include "sparrow_crc32c.h"
#include "sparrow_kernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                                      \
    do {                                                                                                      \
        if (cond) {                                                                                           \
            passed++;                                                                                         \
        } else {                                                                                              \
            failed++;                                                                                         \
            if (failed <= 40) {                                                                               \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                   \
                printf(__VA_ARGS__);                                                                          \
                printf("\n");                                                                                 \
            }                                                                                                 \
        }                                                                                                     \
    } while (0)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_u32() & 0xFFFFFF) / 16777216.0f; }

static uint16_t to_half(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static float from_half(uint16_t u) {
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

// ---------------------------------------------------------------------------
// A quantized matrix made by the test: random 8-bit codes and (m, d) per group, packed into planes
// as docs/QUANT.md describes.

typedef struct {
    size_t rows, cols, group;
    uint8_t *q;        // [rows][cols] 8-bit codes
    uint16_t *scales;  // [rows][groups][2]
    uint8_t *planes[4];
    uint8_t widths[4];
    unsigned nplanes;
} test_matrix;

static test_matrix make_matrix(size_t rows, size_t cols, size_t group, const uint8_t *widths, unsigned nplanes) {
    test_matrix m = {rows, cols, group, NULL, NULL, {0}, {0}, nplanes};
    size_t groups = cols / group, P = group % 64 == 0 ? 64 : group;
    m.q = malloc(rows * cols);
    m.scales = malloc(rows * groups * 4);
    for (size_t i = 0; i < rows * cols; i++) m.q[i] = (uint8_t)next_u32();
    // Some rows at the extremes of the code range (all 0, all 255), where saturation would show.
    if (rows > 2) {
        memset(m.q, 255, cols);
        memset(m.q + cols, 0, cols);
    }
    for (size_t i = 0; i < rows * groups; i++) {
        m.scales[2 * i] = to_half(uniform(-1.0f, 0.2f));
        m.scales[2 * i + 1] = to_half(uniform(0.0005f, 0.02f));
    }
    unsigned shift = 8;
    for (unsigned k = 0; k < nplanes; k++) {
        unsigned W = widths[k];
        m.widths[k] = (uint8_t)W;
        shift -= W;
        size_t row_bytes = cols * W / 8, bpb = P * W / 8;
        m.planes[k] = calloc(rows * row_bytes, 1);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) {
                unsigned v = (m.q[r * cols + c] >> shift) & ((1u << W) - 1);
                size_t blk = c / P, i = c % P;
                m.planes[k][r * row_bytes + blk * bpb + i % bpb] |= (uint8_t)(v << ((i / bpb) * W));
            }
    }
    return m;
}

static void free_matrix(test_matrix *m) {
    free(m->q);
    free(m->scales);
    for (unsigned k = 0; k < m->nplanes; k++) free(m->planes[k]);
}

/// The view of the first `np` planes.
static spk_qmatrix view(const test_matrix *m, unsigned np) {
    spk_qmatrix v;
    memset(&v, 0, sizeof v);
    v.rows = m->rows;
    v.cols = m->cols;
    v.group = m->group;
    v.scales = m->scales;
    for (unsigned k = 0; k < np; k++) {
        v.planes[k] = m->planes[k];
        v.widths[k] = m->widths[k];
    }
    v.nplanes = (uint8_t)np;
    return v;
}

static unsigned bits_of(const test_matrix *m, unsigned np) {
    unsigned b = 0;
    for (unsigned k = 0; k < np; k++) b += m->widths[k];
    return b;
}

/// s and o of a group at `bits` (w = o + s·t), from the scales as the format defines them.
static void affine(const test_matrix *m, size_t r, size_t g, unsigned bits, double *s, double *o) {
    size_t groups = m->cols / m->group;
    double mn = from_half(m->scales[(r * groups + g) * 2]), d = from_half(m->scales[(r * groups + g) * 2 + 1]);
    double step = (double)(1u << (8 - bits));
    *s = d * step;
    *o = mn + d * (step - 1) / 2;
}

// ---------------------------------------------------------------------------

typedef struct {
    size_t rows, cols, group, n;
    uint8_t widths[4];
    unsigned nplanes;
} qcase;

static const qcase qcases[] = {
    {13, 256, 64, 1, {2, 2, 4}, 3},
    {7, 256, 64, 5, {2, 2, 4}, 3},
    {5, 128, 128, 3, {4, 4}, 2},
    {37, 512, 64, 2, {2, 2, 2, 2}, 4},
    {9, 48, 16, 2, {2, 2, 4}, 3},
    {3, 96, 32, 1, {8}, 1},
    {6, 2048, 64, 1, {2, 2, 4}, 3},   // 32 groups
    {2, 19200, 64, 1, {4, 4}, 2},     // 300 groups: two factor chunks
    {3, 1024, 128, 9, {2, 2, 4}, 3},  // two token chunks
    {11, 320, 64, 17, {8}, 1},        // 8-bit codes, odd rows and tokens
    {4, 576, 192, 6, {2, 4}, 2},      // three blocks per group; a pattern without a specialisation
    {5, 960, 320, 4, {4, 2, 2}, 3},   // five blocks per group
    {3, 240, 80, 3, {2, 2, 4}, 3},    // a block of 80 weights (portable only)
    {1, 64, 64, 1, {4}, 1},
    {15, 704, 64, 33, {2, 2, 4}, 3},  // 11 groups (vector tails), 33 tokens
};

static void quantize_reference(const float *x, size_t n, size_t cols, spk_qact *a) {
    int prev = spk_current_isa();
    spk_force_isa(SPK_ISA_PORTABLE);
    spk_quantize_act(x, n, cols, a);
    spk_force_isa(prev);
}

static spk_qact alloc_act(size_t n, size_t cols, size_t group) {
    spk_qact a = {malloc(n * cols), malloc(n * (cols / group) * 4), malloc(n * (cols / group) * 4), n, cols, group};
    return a;
}
static void free_act(spk_qact *a) {
    free(a->q);
    free(a->scale);
    free(a->sum);
}

static void test_quantized(int isa) {
    for (size_t ci = 0; ci < sizeof qcases / sizeof qcases[0]; ci++) {
        const qcase *c = &qcases[ci];
        test_matrix m = make_matrix(c->rows, c->cols, c->group, c->widths, c->nplanes);
        size_t groups = c->cols / c->group;
        float *x = malloc(c->n * c->cols * 4);
        for (size_t i = 0; i < c->n * c->cols; i++) x[i] = uniform(-1, 1) * ((next_u32() % 17) == 0 ? 12.0f : 1.0f);
        if (c->n > 1) memset(x + c->cols, 0, c->cols * 4);  // a zero row: scale 0
        spk_qact ref = alloc_act(c->n, c->cols, c->group), got = alloc_act(c->n, c->cols, c->group);
        quantize_reference(x, c->n, c->cols, &ref);
        spk_force_isa(isa);
        spk_quantize_act(x, c->n, c->cols, &got);
        CHECK(memcmp(ref.q, got.q, c->n * c->cols) == 0 && memcmp(ref.scale, got.scale, c->n * groups * 4) == 0 &&
                  memcmp(ref.sum, got.sum, c->n * groups * 4) == 0,
              "%s: activation quantizer differs from the portable one (case %zu)", spk_isa_label(isa), ci);
        for (unsigned np = 1; np <= c->nplanes; np++) {
            spk_qmatrix w = view(&m, np);
            unsigned bits = bits_of(&m, np);
            size_t R = c->rows, N = c->n;
            double *yf = malloc(N * R * 8), *yi = malloc(N * R * 8), *bf = malloc(N * R * 8), *bi = malloc(N * R * 8);
            // References from the test's own codes: float activations, and the int8 ones.
            for (size_t j = 0; j < R; j++)
                for (size_t i = 0; i < N; i++) {
                    double sf = 0, magf = 0, si = 0, magi = 0;
                    for (size_t g = 0; g < groups; g++) {
                        double s, o;
                        affine(&m, j, g, bits, &s, &o);
                        int64_t dot = 0, adot = 0;
                        for (size_t t = 0; t < c->group; t++) {
                            size_t col = g * c->group + t;
                            unsigned code = m.q[j * c->cols + col] >> (8 - bits);
                            double wv = o + s * code;
                            sf += wv * x[i * c->cols + col];
                            magf += fabs(wv * x[i * c->cols + col]);
                            dot += (int64_t)code * ref.q[i * c->cols + col];
                            adot += llabs((int64_t)code * ref.q[i * c->cols + col]) + 128 * llabs(ref.q[i * c->cols + col]);
                        }
                        double xs = ref.scale[i * groups + g];
                        si += xs * (s * dot + o * ref.sum[i * groups + g]);
                        magi += fabs(xs) * (fabs(s) * adot + fabs(o) * fabs((double)ref.sum[i * groups + g]));
                    }
                    yf[i * R + j] = sf;
                    bf[i * R + j] = magf;
                    yi[i * R + j] = si;
                    bi[i * R + j] = magi;
                }
            float *y = malloc(N * R * 4);
            // Row ranges: all rows, and an inner range (row offsets into planes and scales).
            size_t ranges[2][2] = {{0, R}, {R > 2 ? 1 : 0, R > 2 ? R - 1 : R}};
            for (int rr = 0; rr < 2; rr++) {
                for (size_t i = 0; i < N * R; i++) y[i] = NAN;
                int integer = spk_qgemm_is_integer(&w);
                CHECK(integer == (isa != SPK_ISA_SCALAR), "%s: is_integer %d", spk_isa_label(isa), integer);
                spk_qgemm(&w, x, N, c->cols, &got, ranges[rr][0], ranges[rr][1], y, R);
                int bad = 0;
                for (size_t j = 0; j < R && !bad; j++)
                    for (size_t i = 0; i < N; i++) {
                        int inside = j >= ranges[rr][0] && j < ranges[rr][1];
                        if (!inside) {
                            if (!isnan(y[i * R + j])) bad = 1;
                            continue;
                        }
                        double want = integer ? yi[i * R + j] : yf[i * R + j];
                        double tol = integer ? 2e-6 * bi[i * R + j] + 1e-6 : 1e-5 * bf[i * R + j] + 1e-6;
                        if (!(fabs(y[i * R + j] - want) <= tol)) {
                            bad = 1;
                            printf("  %s case %zu bits %u row %zu token %zu: got %.7g want %.7g (tol %.3g)\n",
                                   spk_isa_label(isa), ci, bits, j, i, y[i * R + j], want, tol);
                            break;
                        }
                        // The integer path stays within int8 activation rounding of the float result.
                        if (integer && !(fabs(want - yf[i * R + j]) <= 0.01 * bf[i * R + j] + 1e-4)) bad = 1;
                    }
                CHECK(!bad, "%s: qgemm case %zu (%zux%zu g%zu n%zu) at %u bits, rows [%zu, %zu)", spk_isa_label(isa), ci,
                      R, c->cols, c->group, N, bits, ranges[rr][0], ranges[rr][1]);
            }
            // The library's own references agree with the test's.
            if (isa == SPK_ISA_SCALAR) {
                float *r = malloc(N * R * 4);
                spk_qgemm_ref(&w, x, N, c->cols, 0, R, r, R);
                int bad = 0;
                for (size_t i = 0; i < N * R; i++) bad |= !(fabs(r[i] - yf[i]) <= 1e-5 * bf[i] + 1e-6);
                spk_qgemm_ref_int(&w, &ref, 0, R, r, R);
                for (size_t i = 0; i < N * R; i++) bad |= !(fabs(r[i] - yi[i]) <= 1e-6 * bi[i] + 1e-6);
                float *row = malloc(c->cols * 4);
                for (size_t j = 0; j < R; j++) {
                    spk_qrow(&w, j, row);
                    for (size_t col = 0; col < c->cols; col++) {
                        double s, o;
                        affine(&m, j, col / c->group, bits, &s, &o);
                        double wv = o + s * (m.q[j * c->cols + col] >> (8 - bits));
                        bad |= !(fabs(row[col] - wv) <= 1e-6 * fabs(wv) + 1e-7);
                    }
                }
                CHECK(!bad, "spk_qgemm_ref / spk_qgemm_ref_int / spk_qrow case %zu at %u bits", ci, bits);
                free(row);
                free(r);
            }
            free(y);
            free(yf);
            free(yi);
            free(bf);
            free(bi);
        }
        spk_force_isa(-1);
        free_act(&ref);
        free_act(&got);
        free(x);
        free_matrix(&m);
    }
}

// ---------------------------------------------------------------------------
// E2M1 matrices (MXFP4 weights kept as they are): random E2M1 codes, random shift bytes (their
// upper bits must be ignored), power-of-two steps with m = -128 d. The values each code stands for
// are worked out here from the E2M1 definition, not from the library's tables.

/// The value of E2M1 code c (sign bit 3, exponent bits 2-1, mantissa bit 0).
static double e2m1_value(unsigned c) {
    static const double mag[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    return (c & 8 ? -1 : 1) * mag[c & 7];
}

/// n (the weight in steps d) of stored code t at `bits` (2: sign and top exponent bit) under shift k.
static double e2m1_steps(unsigned t, unsigned bits, unsigned k) {
    double v;
    if (bits == 4) {
        v = e2m1_value(t);
    } else {  // the 2-bit prefix: ±0.75 for exponent bit 0 (±1 at k = 0, for an integer), ±3 else
        double mag = (t & 1) ? 3 : (k == 0 ? 1 : 0.75);
        v = (t & 2) ? -mag : mag;
    }
    return v * (double)(1u << (k + 1));
}

static void test_e2m1(int isa) {
    uint64_t outer = rng;  // a stream of its own: the other tests keep the data they were tuned on
    rng = 0xE2A1E2A1E2A1E2A1ull + (uint64_t)isa;
    static const struct { size_t rows, cols, group, n; unsigned wide; } cases[] = {
        {13, 256, 64, 1, 0}, {7, 512, 64, 5, 0}, {9, 64, 64, 17, 0}, {3, 19200, 64, 1, 0}, {3, 1024, 64, 9, 1},
        {4, 192, 64, 2, 1}, {5, 96, 32, 1, 0}, {6, 160, 32, 3, 1},  // groups of 32: the portable paths
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        size_t R = cases[ci].rows, C = cases[ci].cols, N = cases[ci].n, G = cases[ci].group, groups = C / G;
        // Widths {2, 2} (levels 2 and 4) or one 4-bit plane (level 4 alone).
        uint8_t widths[2] = {2, 2};
        unsigned nplanes = 2;
        if (cases[ci].wide) { widths[0] = 4; nplanes = 1; }
        uint8_t *codes = malloc(R * C), *shifts = malloc(R * groups);
        uint16_t *scales = malloc(R * groups * 4);
        for (size_t i = 0; i < R * C; i++) codes[i] = (uint8_t)(next_u32() & 15);
        for (size_t i = 0; i < R * groups; i++) {
            shifts[i] = (uint8_t)next_u32();
            float d = ldexpf(1, -12 + (int)(next_u32() % 9));
            scales[2 * i] = to_half(-128 * d);
            scales[2 * i + 1] = to_half(d);
        }
        uint8_t *planes[2];
        unsigned shift = 4;
        for (unsigned k = 0; k < nplanes; k++) {
            unsigned W = widths[k];
            shift -= W;
            size_t row_bytes = C * W / 8, bpb = G * W / 8;
            planes[k] = calloc(R * row_bytes, 1);
            for (size_t r = 0; r < R; r++)
                for (size_t c = 0; c < C; c++) {
                    unsigned v = (codes[r * C + c] >> shift) & ((1u << W) - 1);
                    size_t blk = c / G, i = c % G;
                    planes[k][r * row_bytes + blk * bpb + i % bpb] |= (uint8_t)(v << ((i / bpb) * W));
                }
        }
        float *x = malloc(N * C * 4);
        for (size_t i = 0; i < N * C; i++) x[i] = uniform(-1, 1) * ((next_u32() % 17) == 0 ? 12.0f : 1.0f);
        spk_qact act = alloc_act(N, C, G);
        quantize_reference(x, N, C, &act);
        spk_force_isa(isa);
        // Levels: the 2-bit prefix (first plane of {2, 2}) and the 4-bit codes.
        for (unsigned np = 1; np <= nplanes; np++) {
            unsigned bits = cases[ci].wide ? 4 : 2 * np;
            spk_qmatrix w;
            memset(&w, 0, sizeof w);
            w.rows = R;
            w.cols = C;
            w.group = G;
            w.scales = scales;
            w.shifts = shifts;
            for (unsigned k = 0; k < np; k++) {
                w.planes[k] = planes[k];
                w.widths[k] = widths[k];
            }
            w.nplanes = (uint8_t)np;
            double *yf = malloc(N * R * 8), *yi = malloc(N * R * 8), *bf = malloc(N * R * 8), *bc = malloc(N * R * 8);
            double *wv = malloc(C * 8);
            int bad = 0;
            float *row = malloc(C * 4);
            for (size_t j = 0; j < R; j++) {
                for (size_t c = 0; c < C; c++) {
                    uint8_t sh = shifts[j * groups + c / G];
                    unsigned k = ((c % G) < 32 ? sh : sh >> 2) & 3;
                    double d = from_half(scales[(j * groups + c / G) * 2 + 1]);
                    wv[c] = d * e2m1_steps(codes[j * C + c] >> (4 - bits), bits, k);
                }
                if (isa == SPK_ISA_SCALAR) {  // the library's dequantized row: exact
                    spk_qrow(&w, j, row);
                    for (size_t c = 0; c < C; c++) bad |= row[c] != (float)wv[c];
                }
                for (size_t i = 0; i < N; i++) {
                    double sf = 0, mag = 0, si = 0, cancel = 0;
                    for (size_t g = 0; g < groups; g++) {
                        double d = from_half(scales[(j * groups + g) * 2 + 1]);
                        int64_t dot = 0, xabs = 0;
                        for (size_t t = 0; t < G; t++) {
                            size_t c = g * G + t;
                            sf += wv[c] * x[i * C + c];
                            mag += fabs(wv[c] * x[i * C + c]);
                            dot += (int64_t)llround(wv[c] / d) * act.q[i * C + c];
                            xabs += llabs((int64_t)act.q[i * C + c]);
                        }
                        si += act.scale[i * groups + g] * d * (double)dot;
                        cancel += act.scale[i * groups + g] * d * 256.0 * (double)xabs;
                    }
                    yf[i * R + j] = sf;
                    yi[i * R + j] = si;
                    bf[i * R + j] = mag;
                    bc[i * R + j] = cancel;
                }
            }
            CHECK(!bad, "spk_qrow of an E2M1 matrix, case %zu at %u bits", ci, bits);
            float *y = malloc(N * R * 4);
            int integer = spk_qgemm_is_integer(&w);
            CHECK(integer == (isa != SPK_ISA_SCALAR), "%s: E2M1 is_integer %d", spk_isa_label(isa), integer);
            spk_qgemm(&w, x, N, C, &act, 0, R, y, R);
            bad = 0;
            for (size_t i = 0; i < N * R && !bad; i++) {
                double want = integer ? yi[i] : yf[i];
                // The integer sums are exact; the kernels' d·Σu·x_q and m·Σx_q (u = 128 + n, m = -128 d)
                // cancel to d·Σn·x_q up to float rounding of terms the size of 256 d·Σ|x_q|.
                double tol = integer ? 2e-6 * (bf[i] + bc[i]) + 1e-6 : 1e-5 * bf[i] + 1e-6;
                if (!(fabs(y[i] - want) <= tol)) {
                    bad = 1;
                    printf("  %s E2M1 case %zu bits %u at %zu: got %.7g want %.7g (tol %.3g)\n", spk_isa_label(isa),
                           ci, bits, i, y[i], want, tol);
                }
            }
            CHECK(!bad, "%s: E2M1 qgemm case %zu (%zux%zu n%zu) at %u bits", spk_isa_label(isa), ci, R, C, N, bits);
            free(row);
            free(y);
            free(wv);
            free(yf);
            free(yi);
            free(bf);
            free(bc);
        }
        spk_force_isa(-1);
        free_act(&act);
        free(x);
        for (unsigned k = 0; k < nplanes; k++) free(planes[k]);
        free(codes);
        free(shifts);
        free(scales);
    }
    rng = outer;
}

static void test_float_gemm(int isa) {
    const size_t shapes[][3] = {{1, 1, 1}, {1, 17, 5}, {3, 64, 8}, {5, 131, 13}, {1, 1024, 37}, {7, 300, 4}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t n = shapes[si][0], k = shapes[si][1], rows = shapes[si][2];
        float *x = malloc(n * k * 4), *w32 = malloc(rows * k * 4), *want = malloc(n * rows * 4), *got = malloc(n * rows * 4);
        void *w = malloc(rows * k * 4);
        for (size_t i = 0; i < n * k; i++) x[i] = uniform(-1, 1);
        for (size_t i = 0; i < rows * k; i++) w32[i] = uniform(-1, 1);
        for (int t = 0; t < 3; t++) {
            spk_dtype dt = (spk_dtype)t;
            spk_from_f32(w32, w, dt, rows * k);
            spk_force_isa(SPK_ISA_SCALAR);
            spk_gemm_ref(x, n, k, k, w, dt, k, 0, rows, want, rows);
            spk_force_isa(isa);
            spk_gemm(x, n, k, k, w, dt, k, 0, rows, got, rows);
            int bad = 0;
            for (size_t i = 0; i < n * rows; i++)
                bad |= !(fabsf(got[i] - want[i]) <= sqrtf((float)k) * 4e-6f * fmaxf(1, fabsf(want[i])));
            CHECK(!bad, "%s: gemm type %d n%zu k%zu rows%zu", spk_isa_label(isa), t, n, k, rows);
        }
        spk_force_isa(-1);
        free(x);
        free(w32);
        free(want);
        free(got);
        free(w);
    }
}

// SwiGLU and the clamped SwiGLU against double precision: values across the exponential's range,
// ragged lengths (vector bodies and tails), zeros, ±inf and NaN. Own random stream.
static double silu_ref(double g, double alpha) { return g / (1.0 + exp(-alpha * g)); }

static void test_activations(int isa) {
    uint64_t outer = rng;
    rng = 0x5DEECE66Dull;
    const size_t lengths[] = {1, 7, 16, 37, 1000};
    const float limit = 7.0f, alpha = 1.702f;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li];
        float *gate = malloc(n * 4), *up = malloc(n * 4), *g2 = malloc(n * 4);
        for (int clamped = 0; clamped < 2; clamped++) {
            for (size_t i = 0; i < n; i++) {
                float spread = (i % 3 == 0) ? 100.0f : 10.0f;  // past the clamp at ±87 too
                gate[i] = g2[i] = uniform(-spread, spread);
                up[i] = uniform(-10, 10);
            }
            if (n >= 7) {
                const float special[] = {0.0f, -0.0f, INFINITY, NAN, -1000.0f, 1000.0f, 88.5f};
                for (size_t i = 0; i < 7; i++) gate[i] = g2[i] = special[i];
            }
            spk_force_isa(isa);
            if (clamped) spk_clamped_swiglu(n, gate, up, limit, alpha);
            else spk_swiglu(n, gate, up);
            spk_force_isa(-1);
            int bad = 0;
            for (size_t i = 0; i < n; i++) {
                double g = g2[i], u = up[i];
                if (clamped) {
                    g = g > limit ? limit : g;
                    u = u > limit ? limit : (u < -limit ? -limit : u);
                }
                double want = clamped ? silu_ref(g, alpha) * (u + 1) : silu_ref(g, 1) * u;
                if (isnan(want) || isnan(g2[i])) {
                    bad |= !isnan(gate[i]);
                } else if (isinf(want)) {
                    bad |= gate[i] != want;
                } else {
                    // alpha · g rounded to a float moves e^(−alpha·g) by up to |alpha·g| ulp.
                    double tolerance = 1e-6 + (clamped ? 1.2e-7 * fabs(alpha * g) : 0);
                    bad |= !(fabs(gate[i] - want) <= tolerance * fabs(want) + 1e-30);
                }
            }
            CHECK(!bad, "%s: %sswiglu n%zu", spk_isa_label(isa), clamped ? "clamped " : "", n);
        }
        free(gate);
        free(up);
        free(g2);
    }
    rng = outer;
}

static void test_dispatch_rules(void) {
    const uint32_t fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29, avx2 = 1u << 5;
    const uint32_t f = 1u << 16, dq = 1u << 17, bw = 1u << 30, vl = 1u << 31, vnni = 1u << 11;
    const uint32_t l1 = fma | osxsave | avx | f16c, l7 = avx2 | f | dq | bw | vl;
    CHECK(spk_x86_isa_from_cpuid(l1, l7, vnni, 0xE7) == SPK_ISA_AVX512, "full AVX-512 VNNI");
    CHECK(spk_x86_isa_from_cpuid(l1, l7, 0, 0xE7) == SPK_ISA_AVX2, "AVX-512 without VNNI takes avx2");
    CHECK(spk_x86_isa_from_cpuid(l1, avx2 | f, vnni, 0xE7) == SPK_ISA_AVX2, "AVX-512F without BW/VL/DQ takes avx2");
    CHECK(spk_x86_isa_from_cpuid(l1, l7, vnni, 0x07) == SPK_ISA_AVX2, "AVX-512 disabled by the OS (XCR0) takes avx2");
    CHECK(spk_x86_isa_from_cpuid(l1 & ~fma, l7, vnni, 0xE7) == SPK_ISA_PORTABLE, "AVX2 without FMA is not avx2");
    CHECK(spk_x86_isa_from_cpuid(l1 & ~f16c, l7, vnni, 0xE7) == SPK_ISA_PORTABLE, "AVX2 without F16C is not avx2");
    CHECK(spk_x86_isa_from_cpuid(l1, l7, vnni, 0x03) == SPK_ISA_PORTABLE, "YMM state off: portable");
    CHECK(spk_x86_isa_from_cpuid(l1 & ~osxsave, l7, vnni, 0xE7) == SPK_ISA_PORTABLE, "no OSXSAVE: portable");
    CHECK(spk_x86_isa_from_cpuid(0, 0, 0, 0) == SPK_ISA_PORTABLE, "nothing: portable");
    CHECK(spk_arm_isa_from_hwcap(1u << 1, 0) == SPK_ISA_NEON, "ASIMD only: neon");
    CHECK(spk_arm_isa_from_hwcap((1u << 1) | (1u << 20), 0) == SPK_ISA_DOTPROD, "ASIMDDP: dotprod");
    CHECK(spk_arm_isa_from_hwcap((1u << 1) | (1u << 20), 1u << 13) == SPK_ISA_I8MM, "I8MM: i8mm");
    CHECK(spk_arm_isa_from_hwcap((1u << 1), 1u << 13) == SPK_ISA_NEON, "I8MM without dotprod: neon");
    CHECK(spk_arm_isa_from_hwcap(0, 0) == SPK_ISA_PORTABLE, "no ASIMD: portable");
    for (int i = 0; i < SPK_ISA_COUNT; i++) CHECK(spk_isa_parse(spk_isa_label(i)) == i, "label %d round trip", i);
    CHECK(spk_isa_parse("avx3") == -1 && spk_isa_parse("") == -1 && spk_isa_parse(NULL) == -1, "unknown names");
    CHECK(spk_isa_label(-1) == NULL && spk_isa_label(SPK_ISA_COUNT) == NULL, "labels out of range");
    int best = spk_best_isa();
    CHECK(spk_isa_available(best) && spk_isa_available(SPK_ISA_SCALAR) && spk_isa_available(SPK_ISA_PORTABLE),
          "best, scalar and portable are available");
    for (int i = 0; i < SPK_ISA_COUNT; i++) {
        int used = spk_force_isa(i);
        CHECK(spk_isa_available(i) ? used == i && spk_current_isa() == i : used == -1, "force %s", spk_isa_label(i));
        spk_force_isa(-1);
    }
    CHECK(spk_force_isa(99) == -1 && spk_force_isa(-1) == spk_process_isa(), "force out of range");
    int process = spk_process_isa();
    CHECK(spk_set_process_isa(SPK_ISA_PORTABLE) == SPK_ISA_PORTABLE && spk_current_isa() == SPK_ISA_PORTABLE,
          "set the process path");
    CHECK(spk_set_process_isa(-1) == -1 && spk_set_process_isa(SPK_ISA_COUNT) == -1 && spk_process_isa() == SPK_ISA_PORTABLE,
          "bad process paths change nothing");
    CHECK(spk_set_process_isa(process) == process, "restore the process path");
#if defined(__x86_64__)
    CHECK(!spk_isa_available(SPK_ISA_NEON) && !spk_isa_available(SPK_ISA_I8MM), "no ARM path on x86");
#elif defined(__aarch64__)
    CHECK(!spk_isa_available(SPK_ISA_AVX2) && !spk_isa_available(SPK_ISA_AVX512), "no x86 path on ARM");
#endif
}

typedef struct {
    int64_t *slots;
} pool_ctx;
static void pool_task(void *ctx, size_t i) { ((pool_ctx *)ctx)->slots[i] = (int64_t)i * (int64_t)i; }

static void test_pool_and_crc(void) {
    spk_pool *p = spk_pool_create(3);
    CHECK(p != NULL, "pool");
    int64_t slots[1000];
    pool_ctx c = {slots};
    for (int round = 0; round < 50; round++) {
        memset(slots, 0xFF, sizeof slots);
        spk_pool_run(p, 1000, pool_task, &c);
        int bad = 0;
        for (int i = 0; i < 1000; i++) bad |= slots[i] != (int64_t)i * i;
        CHECK(!bad, "pool round %d", round);
    }
    spk_pool_free(p);
    CHECK(spk_crc32c(0, "123456789", 9) == 0xE3069283u, "CRC-32C check value");
    uint8_t zeros[32] = {0};
    CHECK(spk_crc32c(0, zeros, 32) == 0x8A9136AAu, "CRC-32C of 32 zeros");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--expect-env-error") == 0) {
        const char *e = spk_isa_env_error();
        printf("SPARROW_ISA=%s: %s\n", getenv("SPARROW_ISA") ? getenv("SPARROW_ISA") : "", e ? e : "(accepted)");
        CHECK(e != NULL, "SPARROW_ISA must be refused");
        CHECK(spk_process_isa() == spk_best_isa(), "a refused SPARROW_ISA leaves the best path");
    } else if (argc > 2 && strcmp(argv[1], "--expect-process") == 0) {
        CHECK(spk_isa_env_error() == NULL, "SPARROW_ISA accepted");
        CHECK(spk_process_isa() == spk_isa_parse(argv[2]), "process path %s", spk_isa_label(spk_process_isa()));
    } else {
        printf("kernel paths: best %s; testing", spk_isa_label(spk_best_isa()));
        for (int i = 0; i < SPK_ISA_COUNT; i++)
            if (spk_isa_available(i)) printf(" %s", spk_isa_label(i));
        printf("\n");
        test_dispatch_rules();
        test_pool_and_crc();
        for (int isa = 0; isa < SPK_ISA_COUNT; isa++) {
            if (!spk_isa_available(isa)) continue;
            int before = failed;
            test_quantized(isa);
            test_e2m1(isa);
            test_float_gemm(isa);
            test_activations(isa);
            printf("  %-8s %s\n", spk_isa_label(isa), failed == before ? "ok" : "FAILED");
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
