#ifndef SPARROW_CURING_SHIM_H
#define SPARROW_CURING_SHIM_H
// System headers first, under the feature macros Swift's Glibc module uses: liburing.h defines
// _XOPEN_SOURCE/_GNU_SOURCE itself, which would otherwise give fd_set and friends a second,
// conflicting definition inside this module.
#include <features.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <inttypes.h>
#include <time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <liburing.h>

/// O_DIRECT (glibc hides it without _GNU_SOURCE, which must stay off here: see above).
#ifdef O_DIRECT
#define SPARROW_O_DIRECT O_DIRECT
#elif defined(__aarch64__) || defined(__arm__) || defined(__powerpc__)
#define SPARROW_O_DIRECT 0200000
#else
#define SPARROW_O_DIRECT 040000
#endif
static inline int sparrow_o_direct(void) { return SPARROW_O_DIRECT; }

/// A non-blocking, close-on-exec eventfd (how another thread wakes a ring blocked in a wait).
static inline int sparrow_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
static inline unsigned sparrow_pollin(void) { return POLLIN; }

/// Flag macros Swift cannot import, re-exported as functions.
static inline unsigned char sparrow_iosqe_io_link(void) { return IOSQE_IO_LINK; }
static inline unsigned char sparrow_iosqe_fixed_file(void) { return IOSQE_FIXED_FILE; }
#endif
