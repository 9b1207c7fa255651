/*
 * Coroutines: cooperative threads of execution with their own stacks.
 *
 * Block I/O runs in coroutines: a request handler runs in one, calls into
 * the graph, and when something has to wait (the kernel, a socket, a lock)
 * the coroutine yields; whoever completes the wait wakes it again in the
 * AioContext it belongs to.
 *
 * Rules every caller relies on:
 * - A coroutine is entered with bd_coroutine_enter() (or woken with
 *   bd_aio_co_wake()/bd_aio_co_schedule()) and runs until it yields or its
 *   entry function returns; control then goes back to whoever entered it
 *   ("entered from" chaining: a coroutine that enters another one gets
 *   control back when that one yields or terminates).
 * - A coroutine belongs to the AioContext it was last entered in (see
 *   bd_coroutine_get_aio_context()); it only ever runs in that context's
 *   thread.  Other threads wake it through that context, never by entering
 *   it directly.
 * - Entering a coroutine that is already running (has not yielded) aborts.
 * - A terminated coroutine's handle is invalid: its stack goes back to a
 *   per-thread pool and is reused by a later bd_coroutine_create().
 * - Functions that may yield are marked "coroutine_fn" in comments and
 *   names contain "_co_"; call them only from a coroutine.
 */
#ifndef BLOCKD_CORE_COROUTINE_H
#define BLOCKD_CORE_COROUTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blockd/aio.h>
#include <blockd/coroutine.h>

typedef struct BdCoroutine BdCoroutine;
typedef struct BdAioContext BdAioContext;

/* A coroutine's body.  Returning from it terminates the coroutine. */
typedef void BdCoroutineEntry(void *opaque);

/*
 * Each coroutine stack is this big (virtual memory reserved with mmap and
 * MAP_NORESERVE; only the pages a coroutine touches become resident), with
 * one PROT_NONE guard page below it so an overflow faults instead of
 * silently corrupting a neighbour.  1 MiB, as QEMU uses: block drivers nest
 * (a qcow2 node over a throttle filter over a file node, each adding
 * frames), glib and printf-style formatting are not frugal, and ASan's
 * redzones make frames two to three times bigger.  The cost of a large
 * reservation is only address space (10000 live coroutines = 10 GiB of the
 * 128 TiB user address space, and 2 mappings each, well below the default
 * vm.max_map_count of 65530).
 */
#define BD_COROUTINE_STACK_SIZE (1024 * 1024)

/* Default cap of the per-thread pool of free coroutines (and stacks). */
#define BD_COROUTINE_POOL_DEFAULT_MAX 128

/*
 * Enter @co in the calling thread's current AioContext (see
 * bd_aio_current_context(); NULL in a thread without one, and such a
 * coroutine cannot be woken with bd_aio_co_wake()).  Returns when @co
 * yields or terminates; coroutines woken by @co in the meantime with
 * bd_aio_co_wake() are entered before this returns.  May be called from a
 * coroutine (nesting) or outside one.  Aborts if @co is already running.
 */
void bd_coroutine_enter(BdCoroutine *co);

/*
 * Like bd_coroutine_enter() but binds @co to @ctx, which must be the
 * calling thread's current context.
 */
void bd_aio_coroutine_enter(BdAioContext *ctx, BdCoroutine *co);

/* True if @co is running now (entered and not yet yielded). */
bool bd_coroutine_entered(BdCoroutine *co);

/*
 * Cap the number of free coroutines each thread keeps for reuse (default
 * BD_COROUTINE_POOL_DEFAULT_MAX).  Coroutines above the cap are unmapped
 * when they terminate.  Any thread; affects later releases.
 */
void bd_coroutine_pool_set_max(unsigned max);

/* Number of free coroutines in the calling thread's pool (diagnostics). */
unsigned bd_coroutine_pool_size(void);

#endif /* BLOCKD_CORE_COROUTINE_H */
