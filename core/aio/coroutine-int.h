/*
 * Coroutine internals shared by the generic code (coroutine.c), the stack
 * switching backend (coroutine-ucontext.c) and the AioContext's scheduling
 * of coroutines.  Not for use outside core/coroutine*.c and aio-context*.c.
 */
#ifndef BLOCKD_CORE_COROUTINE_INT_H
#define BLOCKD_CORE_COROUTINE_INT_H

#include <setjmp.h>

#include "aio/coroutine.h"

typedef enum BdCoroutineAction {
    BD_CO_ACTION_YIELD = 1,
    BD_CO_ACTION_TERMINATE = 2,
    BD_CO_ACTION_ENTER = 3,
} BdCoroutineAction;

struct BdCoroutine {
    BdCoroutineEntry *entry;
    void *entry_arg;
    /* Who entered us and gets control back; NULL while not running. */
    BdCoroutine *caller;
    /* The context we were last entered in; written before entering. */
    BdAioContext *ctx;
    /* Non-NULL (the scheduler's name) while in a context's schedule list. */
    const char *scheduled;
    BdCoroutine *sched_next;
    /* Coroutines woken by us, entered after we yield (FIFO). */
    BdCoroutine *wakeup_head;
    BdCoroutine **wakeup_tail;
    BdCoroutine *wakeup_next;
    BdCoroutine *pool_next;
    unsigned locks_held;

    /* Backend: the saved registers and the stack. */
    sigjmp_buf env;
    void *stack;            /* lowest usable byte (above the guard page) */
    size_t stack_size;
    void *map;              /* the whole mapping, guard page included */
    size_t map_size;
    unsigned valgrind_stack_id;
    void *asan_fake_stack;  /* ASan's fake stack while switched out */
    /* Only during creation: where to return, and (ASan) the stack there. */
    sigjmp_buf *creator_env;
    const void *creator_stack;
    size_t creator_stack_size;
};

/*
 * Map a stack and prepare a coroutine whose trampoline runs
 * co->entry(co->entry_arg) each time it is entered after termination.
 * Aborts if memory cannot be mapped.
 */
BdCoroutine *bd_co_backend_new(void);

/* Unmap a terminated (or never entered) coroutine. */
void bd_co_backend_delete(BdCoroutine *co);

/*
 * Save the running context in @from and resume @to with @action (which
 * @to's switch call or trampoline sees as its return value).  Returns the
 * action with which @from is resumed later.
 */
BdCoroutineAction bd_co_backend_switch(BdCoroutine *from, BdCoroutine *to,
                                       BdCoroutineAction action);

/* The running coroutine, or the thread's leader if none (never NULL). */
BdCoroutine *bd_co_backend_self(void);

#endif /* BLOCKD_CORE_COROUTINE_INT_H */
