/* Attacks on the stub, the scratch and the injected calls; each prints what
   it saw, one line per attempt, and "host untouched" style results are for
   the test to check from outside.
   sec_stub STUB_BASE GADGET_RETURN SCRATCH MARKER touch
       every way to change the stub's code or the scratch: writes, mprotect,
       mmap over, munmap, mremap onto, madvise; if any write got through, an
       injected call would return into payload(), which creates MARKER on the
       host; then file mmaps (injected calls) to trigger it
   sec_stub STUB_BASE GADGET_RETURN SCRATCH MARKER rseq
       an rseq critical section over the stub whose abort handler is payload()
   sec_stub STUB_BASE GADGET_RETURN SCRATCH MARKER procmem
       the same write through /proc/self/mem, then file maps
   sec_stub 0 0 0 0 pi
       PI futex operations, which would store the host tid in the word
   sec_stub 0 0 0 0 exec PATH
       execve PATH, and what it returned
   sec_stub 0 0 0 0 wait
       fork a child that pauses, say "ready" and wait for it: two guest
       processes in a steady state, for the host to look at */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *marker;
static sigjmp_buf back;

/* What would run on the host if a hijack worked: raw calls, no libc. */
__attribute__((noinline, used)) static void payload(void) {
    long fd;
    __asm__ volatile ("syscall" : "=a"(fd) : "a"(SYS_open), "D"(marker),
                      "S"(O_CREAT | O_WRONLY), "d"(0644) : "rcx", "r11", "memory");
    __asm__ volatile ("syscall" : : "a"(SYS_exit_group), "D"(42) : "rcx", "r11", "memory");
}

static void on_segv(int sig) { siglongjmp(back, sig); }

static void try_write(const char *what, unsigned long addr, const void *bytes, size_t n) {
    if (sigsetjmp(back, 1) == 0) {
        memcpy((void *)addr, bytes, n);
        printf("%s: written\n", what);
    } else {
        printf("%s: fault\n", what);
    }
}

static void said(const char *what, long r) {
    if (r == -1) printf("%s: %s\n", what, strerror(errno));
    else printf("%s: done\n", what);
}

static void trigger_injections(int rounds) {
    int fd = open("/bin/busybox", O_RDONLY);
    for (int i = 0; i < rounds; i++) {
        void *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);   /* userspace injects */
        if (p == MAP_FAILED) { printf("mmap of a file: %s\n", strerror(errno)); break; }
        munmap(p, 4096);
    }
    close(fd);
    printf("file maps: done\n");
}

static struct rseq area __attribute__((aligned(32)));
static struct rseq_cs cs __attribute__((aligned(32)));

/* The abort handler must be preceded by the signature. */
__asm__(".pushsection .text\n"
        ".long 0x53053053\n"
        "abort_ip: call payload\n"
        ".popsection\n");
extern char abort_ip[];

int main(int argc, char **argv) {
    if (argc < 6) return 2;
    unsigned long base = strtoul(argv[1], 0, 0), ret = strtoul(argv[2], 0, 0);
    unsigned long scratch = strtoul(argv[3], 0, 0);
    marker = argv[4];
    setvbuf(stdout, 0, _IONBF, 0);
    signal(SIGSEGV, on_segv);
    signal(SIGBUS, on_segv);
    if (!strcmp(argv[5], "touch")) {
        /* jmp rel32 from the int3 to payload */
        unsigned char jmp[5] = {0xe9};
        int32_t rel = (int32_t)((long)payload - (long)(ret + 5));
        memcpy(jmp + 1, &rel, 4);
        try_write("write the gadget", ret, jmp, 5);
        try_write("write the scratch", scratch, "/etc/passwd", 12);
        said("mprotect the stub rwx", mprotect((void *)base, 4096, PROT_READ | PROT_WRITE | PROT_EXEC));
        said("mprotect the scratch rw", mprotect((void *)scratch, 4096, PROT_READ | PROT_WRITE));
        said("mprotect across the stub, 8 GiB",
             mprotect((void *)(base - (1UL << 32)), 8UL << 32, PROT_READ | PROT_WRITE | PROT_EXEC));
        void *m = mmap((void *)base, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        said("mmap over the stub", m == MAP_FAILED ? -1 : 0);
        m = mmap((void *)(base - 4096), 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        said("mmap overlapping the stub", m == MAP_FAILED ? -1 : 0);
        said("munmap the stub", munmap((void *)base, 4096));
        said("munmap the scratch", munmap((void *)scratch, 4096));
        said("munmap 8 GiB around the stub", munmap((void *)(base - (1UL << 32)), 8UL << 32));
        said("madvise dontfork", madvise((void *)base, 4096, MADV_DONTFORK));
        said("madvise dontneed the scratch", madvise((void *)scratch, 4096, MADV_DONTNEED));
        void *mine = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memcpy(mine, jmp, 5);
        m = mremap(mine, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)base);
        said("mremap onto the stub", m == MAP_FAILED ? -1 : 0);
        said("pkey_mprotect the stub", syscall(SYS_pkey_mprotect, base, 4096, 7, 0));
        trigger_injections(20);
    } else if (!strcmp(argv[5], "procmem")) {
        unsigned char jmp[5] = {0xe9};
        int32_t rel = (int32_t)((long)payload - (long)(ret + 5));
        memcpy(jmp + 1, &rel, 4);
        int fd = open("/proc/self/mem", O_RDWR);
        if (fd < 0)
            printf("open /proc/self/mem: %s\n", strerror(errno));
        else
            said("write the gadget through /proc/self/mem", pwrite(fd, jmp, 5, ret) == 5 ? 0 : -1);
        trigger_injections(20);
    } else if (!strcmp(argv[5], "rseq")) {
        cs.start_ip = base;
        cs.post_commit_offset = 0x10000;
        cs.abort_ip = (uint64_t)abort_ip;
        area.rseq_cs = (uint64_t)&cs;
        /* glibc registered its own area (32 bytes) at start if the host let it: drop it */
        if (__rseq_size)
            syscall(SYS_rseq, (char *)__builtin_thread_pointer() + __rseq_offset, 32,
                    RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
        said("rseq", syscall(SYS_rseq, &area, 32, 0, RSEQ_SIG));
        trigger_injections(2000);
    } else if (!strcmp(argv[5], "pi")) {
        uint32_t word = 0;
        said("lock_pi_private", syscall(SYS_futex, &word, FUTEX_LOCK_PI_PRIVATE, 0, 0, 0, 0));
        said("trylock_pi_private", syscall(SYS_futex, &word, FUTEX_TRYLOCK_PI | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0));
        said("lock_pi2_private", syscall(SYS_futex, &word, 13 | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0));
        said("lock_pi", syscall(SYS_futex, &word, FUTEX_LOCK_PI, 0, 0, 0, 0));
        printf("word %u\n", word);
        said("wake_private", syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0));
    } else if (!strcmp(argv[5], "wait")) {
        if (fork() == 0) {
            pause();
            return 0;
        }
        printf("ready\n");
        wait(0);
    } else if (!strcmp(argv[5], "exec") && argc > 6) {
        char *args[] = {argv[6], 0};
        execv(argv[6], args);
        printf("exec %s: %s\n", argv[6], strerror(errno));
    }
    return 0;
}
