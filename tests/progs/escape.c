/* Escape attempts, one per mode; each prints what it saw.
   escape int80 | open PATH | kill HOSTPID | efault | gadget ADDR PATH
   gadget: open PATH and getppid made by jumping to the stub's own
   "syscall; int3" at ADDR (the filter never notifies calls from the stub,
   so these must still be the kernel's); the int3's SIGTRAP handler reads
   the result out of the saved registers. */
#define _GNU_SOURCE
#include <ucontext.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

static volatile long gadget_result;
static void on_trap(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    gadget_result = uc->uc_mcontext.gregs[REG_RAX];
    /* back to the caller: the return address the call pushed */
    greg_t *sp = &uc->uc_mcontext.gregs[REG_RSP];
    uc->uc_mcontext.gregs[REG_RIP] = *(greg_t *)*sp;
    *sp += 8;
}

static long via_gadget(unsigned long gadget, long nr, long a0) {
    register long rax __asm__("rax") = nr;
    register long rdi __asm__("rdi") = a0;
    register long rsi __asm__("rsi") = 0;
    __asm__ volatile ("call *%3" : "+r"(rax), "+r"(rdi), "+r"(rsi) : "r"(gadget)
                      : "rcx", "r11", "rdx", "r8", "r9", "r10", "memory");
    return gadget_result;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "int80")) {
        long ret;
        /* 32-bit getpid (20) through the legacy gate */
        __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
        printf("int80 returned %ld\n", ret);
        return 0;
    }
    if (!strcmp(argv[1], "open")) {
        int fd = open(argv[2], O_RDONLY);
        printf("open %s: %s\n", argv[2], fd < 0 ? strerror(errno) : "opened");
        return 0;
    }
    if (!strcmp(argv[1], "kill")) {
        int pid = atoi(argv[2]);
        int r = kill(pid, SIGTERM);
        printf("kill %d: %s\n", pid, r < 0 ? strerror(errno) : "sent");
        printf("getpid %d getppid %d\n", getpid(), getppid());
        return 0;
    }
    if (!strcmp(argv[1], "efault")) {
        long r = syscall(SYS_write, 1, (void *)16, 10);
        printf("write(bad pointer) = %ld errno %s\n", r, r < 0 ? strerror(errno) : "-");
        r = syscall(SYS_write, 1, (void *)0x7fffffffffff00, 10);
        printf("write(unmapped) = %ld errno %s\n", r, r < 0 ? strerror(errno) : "-");
        printf("still served\n");
        return 0;
    }
    if (!strcmp(argv[1], "gadget")) {
        struct sigaction sa = {.sa_sigaction = on_trap, .sa_flags = SA_SIGINFO};
        sigaction(SIGTRAP, &sa, 0);
        unsigned long gadget = strtoul(argv[2], 0, 0);
        long fd = via_gadget(gadget, SYS_open, (long)argv[3]);
        printf("open %s: %s\n", argv[3], fd < 0 ? strerror(-fd) : "opened");
        printf("getppid %ld\n", via_gadget(gadget, SYS_getppid, 0));
        return 0;
    }
    return 2;
}
