#define _GNU_SOURCE
#include "sparrow_map_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A fixed table: the handler reads it without locks (async-signal-safe). A slot is live while
 * `length` is non-zero; registration claims a free slot with a compare-and-swap on `claimed`. */
#define SPG_SLOTS 256

typedef struct {
    atomic_int claimed;
    _Atomic uintptr_t base;
    _Atomic size_t length;
    _Atomic uint64_t faults;
} spg_slot;

static spg_slot slots[SPG_SLOTS];
static struct sigaction previous;
static uintptr_t page_size; /* read once at install: sysconf is not async-signal-safe */
static pthread_once_t installed_once = PTHREAD_ONCE_INIT;
static atomic_int installed;

/* Hands a fault that is not ours to whoever handled SIGBUS before (the default action: the
 * faulting instruction runs again and the signal kills the process as it would have). */
static void spg_chain(int signal, siginfo_t *info, void *context) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) {
            previous.sa_sigaction(signal, info, context);
            return;
        }
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signal);
        return;
    }
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(SIGBUS, &fallback, NULL);
}

static void spg_handler(int signal, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int i = 0; i < SPG_SLOTS; i++) {
        size_t length = atomic_load_explicit(&slots[i].length, memory_order_acquire);
        if (length == 0) continue;
        uintptr_t base = atomic_load_explicit(&slots[i].base, memory_order_relaxed);
        if (address < base || address - base >= length) continue;
        void *at = (void *)(address & ~(page_size - 1));
        void *zero = mmap(at, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (zero == at) {
            atomic_fetch_add_explicit(&slots[i].faults, 1, memory_order_release);
            return;
        }
        break;
    }
    spg_chain(signal, info, context);
}

static void spg_install(void) {
    page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = spg_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous) == 0) atomic_store(&installed, 1);
}

int spg_guard_register(const void *base, size_t length) {
    if (base == NULL || length == 0) return -1;
    pthread_once(&installed_once, spg_install);
    if (!atomic_load(&installed)) return -1;
    for (int i = 0; i < SPG_SLOTS; i++) {
        int expected = 0;
        if (!atomic_compare_exchange_strong(&slots[i].claimed, &expected, 1)) continue;
        atomic_store(&slots[i].faults, 0);
        atomic_store(&slots[i].base, (uintptr_t)base);
        atomic_store_explicit(&slots[i].length, length, memory_order_release);
        return i;
    }
    return -1;
}

void spg_guard_unregister(int handle) {
    if (handle < 0 || handle >= SPG_SLOTS) return;
    atomic_store_explicit(&slots[handle].length, 0, memory_order_release);
    atomic_store(&slots[handle].base, 0);
    atomic_store(&slots[handle].claimed, 0);
}

uint64_t spg_guard_faults(int handle) {
    if (handle < 0 || handle >= SPG_SLOTS) return 0;
    return atomic_load_explicit(&slots[handle].faults, memory_order_acquire);
}
