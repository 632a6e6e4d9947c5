// Which kernel path runs: what the CPU and its OS support, the SPARROW_ISA override, and the
// per-thread forcing the tests use.
#define _GNU_SOURCE
#include "sparrow_kernels.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

static const char *const labels[SPK_ISA_COUNT] = {"scalar", "portable", "avx2", "avx512", "neon", "dotprod", "i8mm"};

const char *spk_isa_label(int isa) { return isa >= 0 && isa < SPK_ISA_COUNT ? labels[isa] : NULL; }

int spk_isa_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < SPK_ISA_COUNT; i++)
        if (strcmp(name, labels[i]) == 0) return i;
    return -1;
}

int spk_x86_isa_from_cpuid(uint32_t leaf1_ecx, uint32_t leaf7_ebx, uint32_t leaf7_ecx, uint64_t xcr0) {
    const uint32_t fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    const uint32_t avx2 = 1u << 5, avx512f = 1u << 16, avx512dq = 1u << 17, avx512bw = 1u << 30, avx512vl = 1u << 31;
    const uint32_t avx512vnni = 1u << 11;
    // The OS must save the registers: XMM+YMM state (bits 1, 2); opmask, ZMM0-15 high, ZMM16-31 (5, 6, 7).
    int ymm_os = (leaf1_ecx & osxsave) && (xcr0 & 0x6) == 0x6;
    int zmm_os = ymm_os && (xcr0 & 0xE0) == 0xE0;
    int has_avx2 = ymm_os && (leaf1_ecx & avx) && (leaf1_ecx & fma) && (leaf1_ecx & f16c) && (leaf7_ebx & avx2);
    if (!has_avx2) return SPK_ISA_PORTABLE;
    uint32_t need = avx512f | avx512dq | avx512bw | avx512vl;
    if (zmm_os && (leaf7_ebx & need) == need && (leaf7_ecx & avx512vnni)) return SPK_ISA_AVX512;
    return SPK_ISA_AVX2;
}

int spk_arm_isa_from_hwcap(uint64_t hwcap, uint64_t hwcap2) {
    const uint64_t asimd = 1u << 1, asimddp = 1u << 20, i8mm2 = 1u << 13;  // HWCAP_ASIMD, HWCAP_ASIMDDP, HWCAP2_I8MM
    if (!(hwcap & asimd)) return SPK_ISA_PORTABLE;
    if (!(hwcap & asimddp)) return SPK_ISA_NEON;
    return (hwcap2 & i8mm2) ? SPK_ISA_I8MM : SPK_ISA_DOTPROD;
}

static int detect(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return SPK_ISA_PORTABLE;
    uint32_t leaf1_ecx = c, leaf7_ebx = 0, leaf7_ecx = 0;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        leaf7_ebx = b;
        leaf7_ecx = c;
    }
    uint64_t xcr0 = 0;
    if (leaf1_ecx & (1u << 27)) {  // xgetbv is only defined when the OS set OSXSAVE
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((uint64_t)hi << 32) | lo;
    }
    return spk_x86_isa_from_cpuid(leaf1_ecx, leaf7_ebx, leaf7_ecx, xcr0);
#elif defined(__aarch64__) && defined(__linux__)
    return spk_arm_isa_from_hwcap(getauxval(AT_HWCAP), getauxval(AT_HWCAP2));
#elif defined(__aarch64__) && defined(__APPLE__)
    int v = 0;
    size_t len = sizeof v;
    int dot = sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) == 0 && v;
    v = 0;
    len = sizeof v;
    int mm = sysctlbyname("hw.optional.arm.FEAT_I8MM", &v, &len, NULL, 0) == 0 && v;
    return !dot ? SPK_ISA_NEON : mm ? SPK_ISA_I8MM : SPK_ISA_DOTPROD;
#elif defined(__aarch64__)
    return SPK_ISA_NEON;  // Advanced SIMD is part of every AArch64 profile the kernels target
#else
    return SPK_ISA_PORTABLE;
#endif
}

static int best_resolved = -1;  // detect(), once (relaxed atomics: every thread computes the same)
static int process_isa;         // SPARROW_ISA or the best, set once
static char env_error[160];     // why SPARROW_ISA was ignored, "" if it was not
static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static __thread int forced_isa = -1;

int spk_best_isa(void) {
    int v = __atomic_load_n(&best_resolved, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect();
        __atomic_store_n(&best_resolved, v, __ATOMIC_RELAXED);
    }
    return v;
}

int spk_isa_available(int isa) {
    int best = spk_best_isa();
    if (isa == SPK_ISA_SCALAR || isa == SPK_ISA_PORTABLE) return 1;
#if defined(__x86_64__)
    return (isa == SPK_ISA_AVX2 || isa == SPK_ISA_AVX512) && isa <= best;
#elif defined(__aarch64__)
    return isa >= SPK_ISA_NEON && isa <= SPK_ISA_I8MM && isa <= best;
#else
    (void)best;
    return 0;
#endif
}

static void resolve_process_isa(void) {
    int v = spk_best_isa();
    const char *env = getenv("SPARROW_ISA");
    if (env && *env) {
        int want = spk_isa_parse(env);
        if (want < 0)
            snprintf(env_error, sizeof env_error,
                     "SPARROW_ISA=%.40s is not a kernel path (scalar, portable, avx2, avx512, neon, dotprod, i8mm)", env);
        else if (!spk_isa_available(want))
            snprintf(env_error, sizeof env_error, "SPARROW_ISA=%s is not available on this CPU (its best: %s)", env,
                     labels[v]);
        else
            v = want;
    }
    __atomic_store_n(&process_isa, v, __ATOMIC_RELAXED);
}

int spk_process_isa(void) {
    pthread_once(&process_once, resolve_process_isa);
    return __atomic_load_n(&process_isa, __ATOMIC_RELAXED);
}

int spk_set_process_isa(int isa) {
    (void)spk_process_isa();  // resolved first, so SPARROW_ISA cannot overwrite this later
    if (isa < 0 || isa >= SPK_ISA_COUNT || !spk_isa_available(isa)) return -1;
    __atomic_store_n(&process_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

const char *spk_isa_env_error(void) {
    (void)spk_process_isa();
    return env_error[0] ? env_error : NULL;
}

int spk_current_isa(void) { return forced_isa >= 0 ? forced_isa : spk_process_isa(); }

int spk_force_isa(int isa) {
    if (isa < 0) {
        forced_isa = -1;
        return spk_process_isa();
    }
    if (isa >= SPK_ISA_COUNT || !spk_isa_available(isa)) return -1;
    forced_isa = isa;
    return isa;
}

const char *spk_isa_name(void) { return labels[spk_current_isa()]; }
