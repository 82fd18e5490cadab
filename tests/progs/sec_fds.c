/* Linux's lowest-free-fd rule with many fds open, checked by the program
 * itself so that its output does not depend on how many: run natively (as
 * many as the host's hard limit allows) and in a guest (50,000), it must
 * print the same.
 *   sec_fds N          N fds open under a limit of 2N (N a multiple of 100)
 *   sec_fds bench N    open+close per second with N fds open (a figure only)
 *   sec_fds guest      the guest's bound on fds in all its processes, 2^20
 *                      (guest only: Linux has no such bound) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SELF "/bin/sec_fds"

static long N, L;

static long ret(long r) { return r < 0 ? -errno : r; }
static long open_one(void) { return ret(open(SELF, O_RDONLY)); }

static void expect(const char *what, long got, long want) {
    if (got == want)
        printf("%s: ok\n", what);
    else if (got < 0)
        printf("%s: %s, not %ld\n", what, strerrorname_np(-got), want);
    else
        printf("%s: %ld, not %ld\n", what, got, want);
}

static int after_exec(void) {
    int still = 0;
    for (int fd = 200; fd < 300; fd++)
        still += fcntl(fd, F_GETFD) >= 0;
    expect("after exec: close-on-exec fds left", still, 0);
    expect("after exec: fd 300 kept", fcntl(300, F_GETFD), 0);
    expect("after exec: open", open_one(), 200);
    expect("after exec: open", open_one(), 201);
    return 0;
}

static int bench(int n) {
    struct rlimit rl = {n + 100, n + 100};
    setrlimit(RLIMIT_NOFILE, &rl);
    for (int i = 0; i < n; i++)
        open_one();
    struct timespec a, b;
    int rounds = 2000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < rounds; i++)
        close(open_one());
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("open+close with %d fds open: %.0f per second\n", n, rounds / s);
    return 0;
}

static int guest_bound(void) {
    long max = 1 << 20, each = max / 4, last = 2;
    struct rlimit rl = {max, max};
    expect("setrlimit NOFILE 2^20", ret(setrlimit(RLIMIT_NOFILE, &rl)), 0);
    while (last < each - 1 && (last = ret(dup(0))) >= 0)
        ;
    expect("dups to 2^18 fds", last, each - 1);
    pid_t kids[3];
    for (int i = 0; i < 3; i++)
        if ((kids[i] = fork()) == 0)
            for (;;)
                pause();
    expect("fork to 2^20 fds in the guest", ret(fork()), -ENOMEM);
    expect("dup", ret(dup(0)), -ENFILE);
    expect("open", open_one(), -ENFILE);
    close(100);
    expect("dup after a close", ret(dup(0)), 100);
    for (int i = 0; i < 3; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    expect("fork once the others are gone", child > 0, 1);
    waitpid(child, NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "after-exec") == 0)
        return after_exec();
    if (argc > 1 && strcmp(argv[1], "guest") == 0)
        return guest_bound();
    if (argc > 2 && strcmp(argv[1], "bench") == 0)
        return bench(atoi(argv[2]));
    if (argc < 2 || (N = atol(argv[1])) < 2000 || N % 100) {
        fprintf(stderr, "usage: sec_fds N (a multiple of 100, 2000 or more)\n");
        return 2;
    }
    L = 2 * N;
    syscall(SYS_close_range, 3, ~0u, 0);        /* whatever was inherited */
    struct rlimit rl = {L, L};
    expect("setrlimit NOFILE 2N", ret(setrlimit(RLIMIT_NOFILE, &rl)), 0);
    long wrong = 0;
    for (long i = 3; i < 3 + N; i++)
        wrong += open_one() != i;
    expect("N opens, each the lowest free fd", wrong, 0);
    close(N / 2);
    expect("open after closing N/2", open_one(), N / 2);
    close(300); close(100); close(200);
    expect("open after closing 300 100 200", open_one(), 100);
    expect("open", open_one(), 200);
    expect("open", open_one(), 300);
    expect("open", open_one(), N + 3);
    expect("F_DUPFD from 0.8N", ret(fcntl(0, F_DUPFD, N * 8 / 10)), N + 4);
    close(N * 9 / 10);
    expect("F_DUPFD from 0.8N after closing 0.9N", ret(fcntl(0, F_DUPFD, N * 8 / 10)), N * 9 / 10);
    expect("F_DUPFD from 1.4N", ret(fcntl(0, F_DUPFD, N * 14 / 10)), N * 14 / 10);
    expect("F_DUPFD from 1.4N-1", ret(fcntl(0, F_DUPFD, N * 14 / 10 - 1)), N * 14 / 10 - 1);
    expect("F_DUPFD from 1.4N-1", ret(fcntl(0, F_DUPFD, N * 14 / 10 - 1)), N * 14 / 10 + 1);
    expect("F_DUPFD from 2N", ret(fcntl(0, F_DUPFD, L)), -EINVAL);
    expect("F_DUPFD_CLOEXEC from 0", ret(fcntl(0, F_DUPFD_CLOEXEC, 0)), N + 5);
    expect("dup2 to 1.6N", ret(dup2(0, N * 16 / 10)), N * 16 / 10);
    expect("dup2 to 2N", ret(dup2(0, L)), -EBADF);
    expect("open", open_one(), N + 6);
    for (int fd = 1024; fd < 1152; fd++)
        close(fd);
    expect("dup after closing 1024..1151", ret(dup(0)), 1024);
    expect("dup", ret(dup(0)), 1025);
    expect("close_range 2000..2999", ret(syscall(SYS_close_range, 2000, 2999, 0)), 0);
    wrong = 0;
    for (long fd = 1026; fd < 1152; fd++)
        wrong += open_one() != fd;
    for (long fd = 2000; fd < 3000; fd++)
        wrong += open_one() != fd;
    expect("refilled in order", wrong, 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(N * 3 / 10);
        expect("child: open after closing 0.3N", open_one(), N * 3 / 10);
        expect("child: open", open_one(), N + 7);
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    expect("parent: open", open_one(), N + 7);
    long last = -1, fd;
    while ((fd = open_one()) >= 0)
        last = fd;
    expect("last open before the limit", last, L - 1);
    expect("open at the limit", fd, -EMFILE);
    close(L - 1);
    expect("open after closing 2N-1", open_one(), L - 1);
    rl.rlim_cur = N * 12 / 10;
    expect("setrlimit NOFILE soft 1.2N", ret(setrlimit(RLIMIT_NOFILE, &rl)), 0);
    close(50);
    expect("open below the new limit", open_one(), 50);
    expect("open", open_one(), -EMFILE);
    expect("F_DUPFD from 1.2N", ret(fcntl(0, F_DUPFD, N * 12 / 10)), -EINVAL);
    expect("dup2 to 1.2N", ret(dup2(0, N * 12 / 10)), -EBADF);
    for (int fd = 200; fd < 250; fd++)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    expect("close_range CLOEXEC 250..299",
           ret(syscall(SYS_close_range, 250, 299, CLOSE_RANGE_CLOEXEC)), 0);
    close(300);
    expect("open at 300", open_one(), 300);
    fflush(stdout);
    execl(SELF, SELF, "after-exec", (char *)NULL);
    perror("exec");
    return 1;
}
