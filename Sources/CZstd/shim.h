#ifndef SPARROW_CZSTD_SHIM_H
#define SPARROW_CZSTD_SHIM_H
#include <zstd.h>
#endif
