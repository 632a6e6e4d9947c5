#ifndef SPARROW_ABI_H
#define SPARROW_ABI_H
// Internal helpers of the C interface (not exported from libsparrow: the version script keeps
// only sparrow_*).
#include "../../../Include/sparrow.h"

/// Sets this thread's sparrow_last_error() message (NULL or "" clears it); long messages are cut
/// at a character boundary.
void spabi_set_error(const char *message);
#endif
