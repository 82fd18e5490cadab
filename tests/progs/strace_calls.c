/* Calls whose --strace lines tests/guest/test_strace.py predicts.
 * strace_calls known: a missing file, a pipe's bytes, a child that exits 3,
 *   a signal to itself, bad pointers, uname.
 * strace_calls hostile: huge counts, a string that runs into an unmapped
 *   page, a path of 4096 bytes: each line must stay bounded. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_usr1(int sig) { (void)sig; }

static int known(void)
{
    syscall(SYS_openat, AT_FDCWD, "/no/such/file", O_RDONLY);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return 1;
    syscall(SYS_write, fds[1], "hello\n", 6);
    char buf[64];
    syscall(SYS_read, fds[0], buf, sizeof buf);
    pid_t child = fork();
    if (child == 0)
        _exit(3);
    int status;
    syscall(SYS_wait4, -1, &status, 0, NULL);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    syscall(SYS_kill, getpid(), SIGUSR1);
    syscall(SYS_openat, AT_FDCWD, (char *)1, O_RDONLY);
    syscall(SYS_write, 1, (char *)8, 5);
    struct utsname u;
    syscall(SYS_uname, &u);
    return 0;
}

static int hostile(void)
{
    long page = sysconf(_SC_PAGESIZE);
    char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (two == MAP_FAILED)
        return 1;
    munmap(two + page, page);            /* the string runs into this hole */
    memset(two, 'A', page);
    syscall(SYS_openat, AT_FDCWD, two, O_RDONLY);
    syscall(SYS_write, 1, two, 1UL << 46);
    syscall(SYS_getdents64, 0, two, 1UL << 40);
    static char path[4097];
    memset(path, 'p', 4096);
    path[0] = '/';
    syscall(SYS_openat, AT_FDCWD, path, O_RDONLY);
    char *argv[] = {"x", two, NULL};
    syscall(SYS_execve, two, argv, argv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "hostile") == 0)
        return hostile();
    return known();
}
