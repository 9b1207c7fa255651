/*
 * Helpers shared by the tests and the benchmark of the event loops:
 * waiting in the main context, starting coroutines in IOThreads, and a
 * cross-thread coroutine ping-pong.
 */
#ifndef BLOCKD_TESTS_AIO_TEST_UTIL_H
#define BLOCKD_TESTS_AIO_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aio/aio-context.h"
#include "aio/coroutine.h"

/* The context the program's main thread runs; its main() sets it. */
extern BdAioContext *main_ctx;

/* Run main_ctx (blocking polls) until @cond holds. */
#define WAIT_FOR(cond)                                                  \
    do {                                                                \
        while (!(cond)) {                                               \
            bd_aio_poll(main_ctx, true);                                \
        }                                                               \
    } while (0)

/*
 * @count coroutines of @entry; the i-th gets (char *)@args + i * @arg_size
 * (every one gets @args itself when @arg_size is 0).
 */
typedef struct AioTestSpawn {
    BdCoroutineEntry *entry;
    void *args;
    size_t arg_size;
    int count;
} AioTestSpawn;

/* Enter the coroutines of the AioTestSpawn @opaque; usable as a BH. */
void aio_test_spawn_bh(void *opaque);

/*
 * Start @sp[i] in a new IOThread "<@prefix><i>" for i < @n, and @sp[@n]
 * in the calling (main) thread; wait in main_ctx until the int at
 * @finished, read atomically, reaches @target; destroy the IOThreads.
 */
void aio_test_spawn_everywhere(const char *prefix, int n, AioTestSpawn *sp,
                               int *finished, int target);

/* The outcome of aio_test_ping_pong(). */
typedef struct AioTestPingPong {
    int main_count;         /* wake-ups seen by the main coroutine */
    int io_count;           /* wake-ups seen by the IOThread's */
    bool wrong_thread;      /* either ran in a thread/context not its own */
    int64_t elapsed_ns;     /* time of the bouncing alone */
} AioTestPingPong;

/*
 * Bounce a wake-up @rounds times between a coroutine in main_ctx and one
 * in @iot's context (bd_aio_co_wake() both ways).  Call from the main
 * thread outside coroutines.
 */
AioTestPingPong aio_test_ping_pong(BdIOThread *iot, int rounds);

#endif /* BLOCKD_TESTS_AIO_TEST_UTIL_H */
