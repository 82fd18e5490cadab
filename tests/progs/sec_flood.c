/* One write() of a big anonymous mapping into a pipe, or many writers at
 * once, drained by the parent, which checks every byte; a bystander calls
 * getppid() in a loop meanwhile.  Or one big write() to the console.
 *   sec_flood pipe MIB         one write() of MIB MiB
 *   sec_flood pipes N MIB      N writers, each one write() of MIB MiB;
 *                              nothing is read until all N are about to write
 *   sec_flood tty MIB          one write() of MIB MiB of bytes 0..255 over
 *                              and over to stdout
 *   sec_flood null MIB         one write() of MIB MiB to /dev/null
 *   sec_flood pipe-pages       pipes made and filled until pipe() fails
 * For the pipes, prints the bytes read, the words that were not the
 * pattern, what each write() returned, and the bystander's getppid calls
 * between a quarter and three quarters of the data (the writers were all
 * inside write() then). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (1 << 20)

struct shared {
    volatile long calls;      /* the bystander's getppid calls */
    volatile int stop;
    volatile int ready;       /* writers about to call write() */
};

static uint64_t pattern(uint64_t word) { return word * 0x9E3779B97F4A7C15ull + 1; }

static void writer(int fd, size_t size, struct shared *sh) {
    uint64_t *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) { perror("mmap"); _exit(2); }
    for (size_t i = 0; i < size / 8; i++)
        buf[i] = pattern(i);
    __atomic_add_fetch(&sh->ready, 1, __ATOMIC_SEQ_CST);
    ssize_t n = write(fd, buf, size);
    printf("write returned %zd\n", n);
    fflush(stdout);
    _exit(n == (ssize_t)size ? 0 : 1);
}

static int tty(size_t size) {
    unsigned char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
    for (size_t i = 0; i < size; i++)
        buf[i] = i;
    return write(1, buf, size) != (ssize_t)size;
}

static int null(size_t size) {
    void *buf = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("/dev/null", O_WRONLY);
    printf("write to /dev/null returned %zd\n", write(fd, buf, size));
    return 0;
}

static int pipe_pages(void) {
    static char buf[1 << 16];
    struct rlimit rl = {30000, 30000};
    setrlimit(RLIMIT_NOFILE, &rl);
    int p[2], big = 0, small = 0, other = 0, first[2] = {-1, -1}, a_small = -1;
    long held = 0;
    while (pipe2(p, O_NONBLOCK) == 0) {
        int size = fcntl(p[1], F_GETPIPE_SZ);
        big += size == 65536;
        small += size == 8192;
        other += size != 65536 && size != 8192;
        if (first[0] < 0)
            memcpy(first, p, sizeof p);
        if (size == 8192)
            a_small = p[1];
        ssize_t n = write(p[1], buf, size);
        held += n > 0 ? n : 0;
    }
    printf("pipes: %d of 64 KiB, %d of 8 KiB, %d else, %ld bytes held, then %s\n", big, small,
           other, held, strerrorname_np(errno));
    printf("F_SETPIPE_SZ 64 KiB on a small one: %s\n",
           fcntl(a_small, F_SETPIPE_SZ, 65536) < 0 ? strerrorname_np(errno) : "done");
    close(first[0]);
    close(first[1]);
    printf("a pipe once the first is closed: %d bytes\n",
           pipe(p) ? -errno : fcntl(p[1], F_GETPIPE_SZ));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "pipe-pages") == 0)
        return pipe_pages();
    if (argc < 3) {
        fprintf(stderr, "usage: sec_flood pipe MIB | pipes N MIB | tty MIB | null MIB\n");
        return 2;
    }
    if (strcmp(argv[1], "tty") == 0)
        return tty((size_t)atol(argv[2]) << 20);
    if (strcmp(argv[1], "null") == 0)
        return null((size_t)atol(argv[2]) << 20);
    int writers = strcmp(argv[1], "pipes") == 0 ? atoi(argv[2]) : 1;
    size_t each = (size_t)atol(argv[argc - 1]) << 20, total = each * writers;
    struct shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int p[2];
    if (pipe(p)) { perror("pipe"); return 2; }
    pid_t bystander = fork();
    if (bystander == 0) {
        close(p[0]);
        close(p[1]);
        while (!sh->stop) {
            syscall(SYS_getppid);
            sh->calls++;
        }
        _exit(0);
    }
    for (int i = 0; i < writers; i++)
        if (fork() == 0) {
            close(p[0]);
            writer(p[1], each, sh);
        }
    close(p[1]);
    while (sh->ready < writers)
        sched_yield();
    /* Each writer's words are the pattern from 0: words are checked per writer
     * stream only with one writer; with many, pages interleave, so the sum of
     * all words is checked against the sum of theirs. */
    uint64_t *buf = malloc(CHUNK), sum = 0, want = 0;
    size_t got = 0, fill = 0, bad = 0;
    long calls_q1 = -1, calls_q3 = -1;
    for (;;) {
        ssize_t n = read(p[0], (char *)buf + fill, CHUNK - fill);
        if (n <= 0) break;
        fill += n;
        got += n;
        if (calls_q1 < 0 && got >= total / 4) calls_q1 = sh->calls;
        if (calls_q3 < 0 && got >= total / 4 * 3) calls_q3 = sh->calls;
        if (fill < CHUNK && got < total) continue;
        for (size_t i = 0; i < fill / 8; i++) {
            if (writers == 1)
                bad += buf[i] != pattern((got - fill) / 8 + i);
            sum += buf[i];
        }
        fill = 0;
    }
    for (size_t i = 0; i < each / 8; i++)
        want += pattern(i);
    want *= writers;
    sh->stop = 1;
    int status, failed = 0;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status);
    printf("read %zu of %zu bytes, %zu words not the pattern, sum %s\n", got, total, bad,
           sum == want ? "right" : "wrong");
    printf("bystander calls during the write: %ld\n", calls_q3 - calls_q1);
    printf("children failed: %d\n", failed);
    return got != total || bad || sum != want || failed;
}
