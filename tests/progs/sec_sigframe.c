/* Signal frames that cannot be written and sigreturn frames that cannot be
   restored: each case in a child, its end printed the same way natively
   and in a guest (tests/progs/sec_try.h).  Linux gives the task SIGSEGV,
   which a handler may catch; if that frame cannot be written either, the
   task dies of it. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "sec_try.h"

#define PAGE 4096
#define MXCSR 24               /* in the xsave image */
#define SW_BYTES 464           /* magic1, extended_size, xfeatures, xstate_size */
#define HEADER 512             /* xstate_bv, xcomp_bv, reserved */

static void say(const char *s) { write(1, s, strlen(s)); }

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig, (void)uc;
    say(si->si_code == SI_KERNEL ? "caught SIGSEGV (SI_KERNEL)" : "caught SIGSEGV");
    _exit(3);
}

static void on_usr1(int sig) { (void)sig; say("handler ran; "); }

static void on_usr2(int sig, siginfo_t *si, void *uc) {
    (void)sig, (void)si, (void)uc;
    say("usr2 ran; ");
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa = {.sa_sigaction = fn, .sa_flags = SA_SIGINFO | flags};
    sigaction(sig, &sa, NULL);
}

static void altstack(uintptr_t sp, size_t size) {
    stack_t ss = {.ss_sp = (void *)sp, .ss_size = size};
    if (sigaltstack(&ss, NULL))
        say("sigaltstack refused; ");
}

static void *valid_altstack(void) {
    char *m = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    altstack((uintptr_t)m, 16 * PAGE);
    return m;
}

/* SIGUSR1 sent (a trapped kill) with rsp at sp, which no frame can be below. */
static void kill_self_at(uintptr_t sp) {
    long pid = getpid();
    __asm__ volatile("mov %%rsp, %%r12\n\tmov %0, %%rsp\n\tsyscall\n\tmov %%r12, %%rsp"
                     :: "r"(sp), "a"((long)SYS_kill), "D"(pid), "S"((long)SIGUSR1)
                     : "r12", "rcx", "r11", "memory");
}

static void usr1_onstack(int flags) {
    signal(SIGUSR1, on_usr1);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    sa.sa_flags |= flags;
    sigaction(SIGUSR1, &sa, NULL);
}

static void case_altstack(void *arg) {
    uintptr_t *spec = arg;          /* ss_sp, ss_size, catch SIGSEGV */
    if (spec[2])
        handle(SIGSEGV, on_segv, 0);
    altstack(spec[0], spec[1]);
    usr1_onstack(SA_ONSTACK);
    raise(SIGUSR1);
    say("returned");
    _exit(0);
}

static void case_rsp(void *arg) {
    uintptr_t *spec = arg;          /* rsp, how SIGSEGV is handled: 0 default, 1 on an
                                       alternate stack, 2 on the (bad) stack */
    if (spec[1] == 1) {
        valid_altstack();
        handle(SIGSEGV, on_segv, SA_ONSTACK);
    } else if (spec[1] == 2) {
        handle(SIGSEGV, on_segv, 0);
    }
    usr1_onstack(0);
    kill_self_at(spec[0]);
    say("returned");
    _exit(0);
}

static void case_fault_at_0(void *arg) {
    (void)arg;
    handle(SIGSEGV, on_segv, 0);    /* its frame would go below 0 */
    __asm__ volatile("xor %%esp, %%esp\n\tpush %%rax" ::: "memory");
    _exit(0);
}

static void case_no_restorer(void *arg) {
    uintptr_t *spec = arg;          /* catch SIGSEGV */
    if (spec[0])
        handle(SIGSEGV, on_segv, 0);
    struct {
        void (*handler)(int);
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } ka = {on_usr1, 0, NULL, 0};
    syscall(SYS_rt_sigaction, SIGUSR1, &ka, NULL, 8);
    raise(SIGUSR1);
    say("returned");
    _exit(0);
}

/* --- sigreturn: the handler spoils the frame it returns through ---------- */
static int spoil;                   /* which way */

static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static void spoiler(int sig, siginfo_t *si, void *ctx) {
    (void)sig, (void)si;
    ucontext_t *uc = ctx;
    unsigned char *fx = (unsigned char *)uc->uc_mcontext.fpregs;
    uint64_t bit = 2;
    switch (spoil) {
    case 0: break;
    case 1:                         /* a component this CPU has not enabled */
        while (xcr0() >> bit & 1)
            bit++;
        *(uint64_t *)(fx + HEADER) |= 1ULL << bit;
        break;
    case 2: *(uint64_t *)(fx + HEADER + 8) = 1; break;          /* xcomp_bv */
    case 3: fx[HEADER + 16] = 1; break;                         /* reserved, bytes 16-23 */
    case 4: fx[HEADER + 40] = 1; break;                         /* reserved, past byte 23 */
    case 5: *(uint32_t *)(fx + MXCSR) |= 1u << 20; break;       /* a reserved MXCSR bit */
    case 6: *(uint32_t *)(fx + SW_BYTES) = 0; break;            /* no magic1: legacy only */
    case 7: *(uint32_t *)(fx + SW_BYTES + 16) += 64; break;     /* magic2 not where said */
    case 8: *(uint32_t *)(fx + SW_BYTES + 16) = 1 << 20; break; /* xstate_size too big */
    case 9: uc->uc_mcontext.fpregs = (void *)0x1000; break;     /* nothing there */
    case 10:                        /* legacy only, and a reserved MXCSR bit */
        *(uint32_t *)(fx + SW_BYTES) = 0;
        *(uint32_t *)(fx + MXCSR) |= 1u << 20;
        break;
    case 12: {                      /* no call to restart at the return, a signal pending */
        sigset_t usr2;
        sigemptyset(&usr2);
        sigaddset(&usr2, SIGUSR2);
        sigprocmask(SIG_BLOCK, &usr2, NULL);
        raise(SIGUSR2);
        uc->uc_mcontext.gregs[REG_RAX] = -512;                  /* -ERESTARTSYS */
        break;
    }
    case 11:                        /* the frame itself where nothing is mapped */
        __asm__ volatile("mov $0x10000, %%rsp\n\tmov %0, %%eax\n\tsyscall"
                         :: "i"(SYS_rt_sigreturn) : "memory");
        break;
    }
}

static void case_sigreturn(void *arg) {
    uintptr_t *spec = arg;          /* which spoil, catch SIGSEGV (on an altstack) */
    spoil = spec[0];
    if (spec[1]) {
        valid_altstack();
        handle(SIGSEGV, on_segv, SA_ONSTACK);
    }
    handle(SIGUSR2, on_usr2, SA_RESTART);
    handle(SIGUSR1, spoiler, 0);
    raise(SIGUSR1);
    say("returned");
    _exit(0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    static char below[4 * PAGE] __attribute__((aligned(PAGE)));
    struct {
        const char *name;
        void (*fn)(void *);
        uintptr_t spec[3];
    } cases[] = {
        {"an altstack whose end wraps past 2^64", case_altstack, {-(uintptr_t)PAGE, 16 * PAGE, 0}},
        {"the same, SIGSEGV caught", case_altstack, {-(uintptr_t)PAGE, 16 * PAGE, 1}},
        {"an altstack past user space", case_altstack, {(1ULL << 47) - PAGE, 16 * PAGE, 1}},
        {"a frame bigger than the altstack", case_altstack,
         {(uintptr_t)below + 3 * PAGE, 2048, 1}},
        {"rsp at 0x100", case_rsp, {0x100, 0}},
        {"rsp at 0x100, SIGSEGV caught on an altstack", case_rsp, {0x100, 1}},
        {"rsp at 0x100, SIGSEGV's frame fails too", case_rsp, {0x100, 2}},
        {"rsp unmapped", case_rsp, {0x10000, 1}},
        {"a fault at rsp 0, its handler's frame fails", case_fault_at_0, {0}},
        {"a handler without SA_RESTORER", case_no_restorer, {0}},
        {"the same, SIGSEGV caught", case_no_restorer, {1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        try(cases[i].name, cases[i].fn, cases[i].spec);
    const char *spoils[] = {"an untouched frame", "xstate_bv past XCR0", "xcomp_bv set",
                            "header bytes 16-23 set", "header bytes past 23 set",
                            "a reserved MXCSR bit", "no FP_XSTATE_MAGIC1",
                            "FP_XSTATE_MAGIC2 missing", "xstate_size past the image",
                            "fpstate unmapped", "legacy only, a reserved MXCSR bit",
                            "the frame unmapped", "rax -ERESTARTSYS, a signal pending"};
    for (uintptr_t i = 0; i < sizeof spoils / sizeof *spoils; i++) {
        char name[96];
        for (uintptr_t caught = 0; caught < 2; caught++) {
            uintptr_t spec[2] = {i, caught};
            snprintf(name, sizeof name, "sigreturn, %s%s", spoils[i], caught ? ", caught" : "");
            try(name, case_sigreturn, spec);
        }
    }
    return 0;
}
