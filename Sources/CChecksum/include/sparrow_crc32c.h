#ifndef SPARROW_CRC32C_H
#define SPARROW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli) of `len` bytes, continuing from `crc` (0 to start): the SSE4.2 instruction
 * where the CPU has it, a table otherwise (identical results). Every checksum of the .spw format. */
uint32_t spk_crc32c(uint32_t crc, const void *data, size_t len);

#endif
