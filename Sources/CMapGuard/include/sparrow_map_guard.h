#ifndef SPARROW_MAP_GUARD_H
#define SPARROW_MAP_GUARD_H

#include <stddef.h>
#include <stdint.h>

/* Memory-mapped files that can shrink under the process. Reading a page of a file mapping past
 * the file's end raises SIGBUS: a model file truncated (or rewritten in place) while a session
 * runs would kill the program. A registered mapping is guarded instead: the SIGBUS handler puts
 * a zero page where the file's page was, counts it, and lets the read go on; the owner checks the
 * count after each use and reports the file as changed (the bytes it read are not trusted).
 * Faults outside every registered mapping go to the handler that was installed before (or the
 * default action). */

/* Guards [base, base + length); returns a handle (>= 0), or -1 when the table is full or the
 * handler cannot be installed (the mapping then stays unguarded). */
int spg_guard_register(const void *base, size_t length);

/* Stops guarding (before the mapping is unmapped). */
void spg_guard_unregister(int handle);

/* Pages of the mapping replaced so far because the file no longer had them. */
uint64_t spg_guard_faults(int handle);

#endif
