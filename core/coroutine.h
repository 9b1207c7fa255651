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
 * Create a coroutine that will run entry(opaque) when first entered.  Takes
 * a stack from the calling thread's pool or maps a new one; aborts if the
 * memory cannot be mapped (like g_malloc).  Any thread.
 */
BdCoroutine *bd_coroutine_create(BdCoroutineEntry *entry, void *opaque);

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

/*
 * coroutine_fn: give control back to whoever entered the current
 * coroutine.  Returns when the coroutine is entered or woken again.
 * Aborts outside a coroutine.
 */
void bd_coroutine_yield(void);

/*
 * The running coroutine; outside a coroutine, a per-thread handle that
 * stands for the thread's own stack (for which bd_in_coroutine() is false).
 */
BdCoroutine *bd_coroutine_self(void);

/* True when called from inside a coroutine. */
bool bd_in_coroutine(void);

/* True if @co is running now (entered and not yet yielded). */
bool bd_coroutine_entered(BdCoroutine *co);

/* The AioContext @co was last entered in (NULL if none). */
BdAioContext *bd_coroutine_get_aio_context(BdCoroutine *co);

/*
 * coroutine_fn: sleep for @ns nanoseconds of the monotonic clock, using a
 * timer of the current coroutine's AioContext.  @ns <= 0 still yields once
 * through the loop.  Aborts outside a coroutine or without a context.
 */
void bd_co_sleep_ns(int64_t ns);

/*
 * Wake @co, which has yielded, in its own AioContext: from that context's
 * thread outside a coroutine it is entered at once; from a coroutine of
 * that context it is entered right after the caller yields or terminates;
 * from any other thread it is scheduled (bd_aio_co_schedule()).  @co must
 * be waiting for exactly this wake-up.
 */
void bd_aio_co_wake(BdCoroutine *co);

/*
 * Enter @co in @ctx: like bd_aio_co_wake() but moving @co to @ctx if it
 * belonged to another context.
 */
void bd_aio_co_enter(BdAioContext *ctx, BdCoroutine *co);

/*
 * Schedule @co, which has yielded (or is about to yield in the calling
 * thread), to be entered by @ctx's loop; @co then belongs to @ctx.  Any
 * thread.  Scheduling a coroutine that is already scheduled aborts with a
 * message naming the first scheduler.
 */
void bd_aio_co_schedule(BdAioContext *ctx, BdCoroutine *co);

/*
 * coroutine_fn: move the current coroutine to @ctx: it is scheduled there
 * and yields; returns running in @ctx's thread.
 */
void bd_aio_co_reschedule_self(BdAioContext *ctx);

/*
 * Cap the number of free coroutines each thread keeps for reuse (default
 * BD_COROUTINE_POOL_DEFAULT_MAX).  Coroutines above the cap are unmapped
 * when they terminate.  Any thread; affects later releases.
 */
void bd_coroutine_pool_set_max(unsigned max);

/* Number of free coroutines in the calling thread's pool (diagnostics). */
unsigned bd_coroutine_pool_size(void);

#endif /* BLOCKD_CORE_COROUTINE_H */
