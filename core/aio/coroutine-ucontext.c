/*
 * Coroutine stack switching: ucontext for the first switch onto a new
 * stack, sigsetjmp/siglongjmp (without saving the signal mask) for every
 * switch after that.
 *
 * Why this and not a hand-written switch: makecontext() is the only
 * portable way to start running on a stack we allocated, and the project
 * has to run on x86_64 and aarch64; swapcontext() however saves and
 * restores the signal mask with a system call, which would cost about a
 * microsecond per switch, so it is used once per stack (pooled coroutines
 * keep their trampoline alive and are re-entered with siglongjmp).  A
 * setjmp-based switch is a few dozen instructions, both sanitizers and
 * valgrind understand it once the stacks are annotated, and it is QEMU's
 * default backend, so its corner cases are well trodden.
 *
 * AddressSanitizer must be told about every switch
 * (__sanitizer_start_switch_fiber before, __sanitizer_finish_switch_fiber
 * after) or it reports false stack-buffer-overflows and loses track of
 * fake stacks; valgrind must know which memory ranges are stacks
 * (VALGRIND_STACK_REGISTER) or it warns about the stack pointer jumping.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "aio/aio-config.h"
#include "aio/coroutine-int.h"

#if defined(__SANITIZE_ADDRESS__)
#define BD_CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BD_CO_ASAN 1
#endif
#endif

#ifdef BD_CO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#ifdef BD_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

/*
 * The running coroutine and the thread's "leader" (the handle standing for
 * the thread's own stack).  Coroutines can move between threads, and a
 * compiler may keep the address of a thread-local variable in a register
 * across a call that, for a coroutine, returns in another thread; reading
 * them only through these out-of-line functions rules that out.
 */
static __thread BdCoroutine *tls_current;
static __thread BdCoroutine tls_leader;

static __attribute__((noinline)) BdCoroutine *get_current(void)
{
    __asm__ __volatile__("" ::: "memory");
    return tls_current;
}

static __attribute__((noinline)) void set_current(BdCoroutine *co)
{
    __asm__ __volatile__("" ::: "memory");
    tls_current = co;
}

static __attribute__((noinline)) BdCoroutine *get_leader(void)
{
    __asm__ __volatile__("" ::: "memory");
    return &tls_leader;
}

BdCoroutine *bd_co_backend_self(void)
{
    BdCoroutine *co = get_current();

    if (!co) {
        co = get_leader();
        set_current(co);
    }
    return co;
}

static inline __attribute__((always_inline))
void start_switch_fiber(void **fake_stack_save, const void *bottom,
                        size_t size)
{
#ifdef BD_CO_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
    (void)fake_stack_save;
    (void)bottom;
    (void)size;
#endif
}

/*
 * Tell ASan we arrived.  The very first switch in a thread always comes
 * from its own stack, which is how the leader learns its bounds (needed to
 * switch back to it).
 *
 * No address-taken locals here or in the switch function: with
 * detect_stack_use_after_return those would live on the coroutine's fake
 * stack, which ASan discards when the coroutine terminates, while a pooled
 * coroutine resumes in these very frames when it is reused.
 */
static inline __attribute__((always_inline))
void finish_switch_fiber(void *fake_stack_save)
{
#ifdef BD_CO_ASAN
    BdCoroutine *leader = get_leader();

    if (!leader->stack) {
        __sanitizer_finish_switch_fiber(fake_stack_save,
                                        (const void **)&leader->stack,
                                        &leader->stack_size);
    } else {
        __sanitizer_finish_switch_fiber(fake_stack_save, NULL, NULL);
    }
#else
    (void)fake_stack_save;
#endif
}

/*
 * makecontext() passes int arguments only; the coroutine pointer travels
 * in two halves.
 */
static void co_trampoline(int lo, int hi)
{
    uintptr_t p = (uintptr_t)(unsigned int)lo;
    BdCoroutine *co;

#if UINTPTR_MAX > UINT32_MAX
    p |= (uintptr_t)(unsigned int)hi << 32;
#else
    (void)hi;
#endif
    co = (BdCoroutine *)p;

#ifdef BD_CO_ASAN
    {
        BdCoroutine *leader = get_leader();

        /* Learn the creator's stack, to switch back to it. */
        __sanitizer_finish_switch_fiber(NULL, &co->creator_stack,
                                        &co->creator_stack_size);
        if (!leader->stack) {
            leader->stack = (void *)co->creator_stack;
            leader->stack_size = co->creator_stack_size;
        }
    }
#endif
    /* Park here; the creator gets control back until the first enter. */
    if (!sigsetjmp(co->env, 0)) {
        start_switch_fiber(&co->asan_fake_stack, co->creator_stack,
                           co->creator_stack_size);
        siglongjmp(*co->creator_env, 1);
    }
    finish_switch_fiber(co->asan_fake_stack);

    for (;;) {
        co->entry(co->entry_arg);
        bd_co_backend_switch(co, co->caller, BD_CO_ACTION_TERMINATE);
    }
}

BdCoroutine *bd_co_backend_new(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t map_size = page + BD_COROUTINE_STACK_SIZE;
    BdCoroutine *self = bd_co_backend_self();
    ucontext_t old_uc, uc;
    sigjmp_buf old_env;
    uintptr_t p;
    char *map;
    BdCoroutine *co;

    map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        perror("blockd: cannot map a coroutine stack");
        abort();
    }
    if (mprotect(map, page, PROT_NONE) < 0) {
        perror("blockd: cannot protect a coroutine stack guard page");
        abort();
    }

    /*
     * The coroutine's own record sits at the top of its mapping and the
     * stack grows down from just below it: no separate allocation, and the
     * record shares its page with the hottest stack frames.
     */
    p = ((uintptr_t)map + map_size - sizeof(BdCoroutine)) & ~(uintptr_t)63;
    co = (BdCoroutine *)p;
    memset(co, 0, sizeof(*co));
    co->map = map;
    co->map_size = map_size;
    co->stack = map + page;
    co->stack_size = (size_t)((char *)co - (char *)co->stack);
#ifdef BD_HAVE_VALGRIND_H
    co->valgrind_stack_id =
        VALGRIND_STACK_REGISTER(co->stack, (char *)co->stack +
                                co->stack_size);
#endif

    if (getcontext(&uc) < 0) {
        perror("blockd: getcontext");
        abort();
    }
    uc.uc_link = &old_uc;
    uc.uc_stack.ss_sp = co->stack;
    uc.uc_stack.ss_size = co->stack_size;
    uc.uc_stack.ss_flags = 0;
    p = (uintptr_t)co;
#if UINTPTR_MAX > UINT32_MAX
    makecontext(&uc, (void (*)(void))co_trampoline, 2,
                (int)(unsigned int)p, (int)(unsigned int)(p >> 32));
#else
    makecontext(&uc, (void (*)(void))co_trampoline, 2, (int)p, 0);
#endif

    co->creator_env = &old_env;
    if (!sigsetjmp(old_env, 0)) {
        start_switch_fiber(&self->asan_fake_stack, co->stack,
                           co->stack_size);
        swapcontext(&old_uc, &uc);
    }
    finish_switch_fiber(self->asan_fake_stack);
    co->creator_env = NULL;
    return co;
}

void bd_co_backend_delete(BdCoroutine *co)
{
#ifdef BD_HAVE_VALGRIND_H
    VALGRIND_STACK_DEREGISTER(co->valgrind_stack_id);
#endif
    if (munmap(co->map, co->map_size) < 0) {
        perror("blockd: munmap of a coroutine stack");
        abort();
    }
}

BdCoroutineAction bd_co_backend_switch(BdCoroutine *from, BdCoroutine *to,
                                       BdCoroutineAction action)
{
    int ret;

    if (action == BD_CO_ACTION_TERMINATE) {
        /* When a pooled coroutine restarts here it has no fake stack. */
        from->asan_fake_stack = NULL;
    }
    set_current(to);
    ret = sigsetjmp(from->env, 0);
    if (ret == 0) {
        /*
         * A terminating coroutine never comes back to this frame: passing
         * NULL lets ASan free its fake stack frames now.
         */
        start_switch_fiber(action == BD_CO_ACTION_TERMINATE ?
                           NULL : &from->asan_fake_stack,
                           to->stack, to->stack_size);
        siglongjmp(to->env, action);
    }
    finish_switch_fiber(from->asan_fake_stack);
    return (BdCoroutineAction)ret;
}
