#include "sparrow_crc32c.h"
#include <string.h>

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): SSE4.2 instruction
// when available, a table otherwise. Both give identical results.

static uint32_t table[256];
static int table_ready;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int b = 0; b < 8; b++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t len) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    while (len--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len) {
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t spk_crc32c(uint32_t crc, const void *data, size_t len) {
    crc = ~crc;
#if defined(__x86_64__)
    static int has_hw = -1;
    int hw = __atomic_load_n(&has_hw, __ATOMIC_RELAXED);
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&has_hw, hw, __ATOMIC_RELAXED);
    }
    if (hw) return ~crc_hw(crc, (const uint8_t *)data, len);
#endif
    return ~crc_table(crc, (const uint8_t *)data, len);
}
