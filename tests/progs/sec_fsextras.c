/* Hostile use of the file calls of issue 15 (locks, inotify, memfd,
 * sendfile and friends, affinity): bad pointers, huge counts and floods.
 * Guest only: the bounds it meets (ENOLCK, ENOSPC, EMFILE) are the guest
 * kernel's.  Each line says what came of one try; the last ones show the
 * kernel still serving. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

#define BAD ((void *)8)
#define HUGE_COUNT (1UL << 62)

static int setlk(int fd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, F_SETLK, &fl);
}

static void locks(void) {
    int fd = open("/tmp/sec-locks", O_RDWR | O_CREAT | O_TRUNC, 0644);
    SHOW("setlk bad pointer", fcntl(fd, F_SETLK, BAD));
    SHOW("getlk bad pointer", fcntl(fd, F_GETLK, BAD));
    SHOW("ofd setlkw bad pointer", fcntl(fd, F_OFD_SETLKW, BAD));
    SHOW("start past loff_t", setlk(fd, F_WRLCK, 0x7fffffffffffffffL, 2));
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_END, .l_start = 0x7fffffffffffffffL};
    lseek(fd, 10, SEEK_SET);
    write(fd, "x", 1);
    SHOW("SEEK_END overflow", fcntl(fd, F_SETLK, &fl));
    /* a flood of records that cannot merge: alternating kinds, one byte each */
    long i, err = 0;
    for (i = 0; i < 100000; i++)
        if (setlk(fd, i % 2 ? F_RDLCK : F_WRLCK, i, 1) < 0) {
            err = errno;
            break;
        }
    printf("records held before a refusal: %ld (%s)\n", i, err ? strerrorname_np(err) : "none");
    SHOW("unlock everything", setlk(fd, F_UNLCK, 0, 0));
    SHOW("after unlocking all, a lock", setlk(fd, F_WRLCK, 0, 1));
    /* an OFD owner has its own bound, and close gives its records back */
    for (i = 0; i < 100000; i++) {
        struct flock o = {.l_type = i % 2 ? F_RDLCK : F_WRLCK, .l_start = 1000 + i, .l_len = 1};
        if (fcntl(fd, F_OFD_SETLK, &o) < 0) {
            err = errno;
            break;
        }
    }
    printf("ofd records before a refusal: %ld (%s)\n", i, strerrorname_np(err));
    close(fd);
    fd = open("/tmp/sec-locks", O_RDWR);
    SHOW("after close, a lock over all", setlk(fd, F_WRLCK, 0, 0));
    SHOW("flock bad op", flock(fd, 0x7fc0));
    close(fd);
}

static void watches(void) {
    int in = inotify_init1(IN_NONBLOCK);
    SHOW("add_watch bad path", inotify_add_watch(in, BAD, IN_ALL_EVENTS));
    SHOW("read bad buffer, empty", read(in, BAD, 4096));
    SHOW("read huge count, empty", read(in, BAD, HUGE_COUNT));
    mkdir("/tmp/w", 0755);
    long i, err = 0;
    char path[64];
    for (i = 0; i < 10000; i++) {
        snprintf(path, sizeof path, "/tmp/w/%ld", i);
        close(open(path, O_WRONLY | O_CREAT, 0644));
        if (inotify_add_watch(in, path, IN_ALL_EVENTS) < 0) {
            err = errno;
            break;
        }
    }
    printf("watches before a refusal: %ld (%s)\n", i, strerrorname_np(err));
    int again = inotify_add_watch(in, "/tmp/w/0", IN_MODIFY);
    printf("the same inode again: wd %d\n", again);
    for (long j = 0; j < i + 1; j++) {
        snprintf(path, sizeof path, "/tmp/w/%ld", j);
        unlink(path);
    }
    char buf[1 << 16];
    long events = 0, n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        events += n;
    printf("events drained: %d\n", events > 0);
    close(in);
    int fds[200], k;
    for (k = 0; k < 200; k++)
        if ((fds[k] = inotify_init()) < 0)
            break;
    printf("instances before a refusal: %d (%s)\n", k, strerrorname_np(errno));
    while (k--)
        close(fds[k]);
    SHOW("an instance again", in = inotify_init());
    close(in);
    rmdir("/tmp/w");
}

static void memfds(void) {
    SHOW("memfd bad name", syscall(SYS_memfd_create, BAD, 0));
    long i;
    for (i = 0; i < 5000; i++) {
        int fd = memfd_create("flood", 0);
        if (fd < 0)
            break;
        write(fd, "x", 1);
        close(fd);
    }
    printf("memfds made and closed: %ld\n", i);
    int fd = memfd_create("big", 0);
    SHOW("ftruncate 1 TiB (sparse)", ftruncate(fd, 1L << 40));
    SHOW("pwrite at its end", pwrite(fd, "end", 3, (1L << 40) - 3));
    SHOW("read bad buffer", pread(fd, BAD, 4096, 0));
    char *m = mmap(NULL, 1 << 20, PROT_READ, MAP_SHARED, fd, (1L << 40) - (1 << 20));
    printf("map of the end ok %d: %.3s\n", m != MAP_FAILED, m + (1 << 20) - 3);
    close(fd);
}

static void transfers(void) {
    int in = open("/tmp/sec-src", O_RDWR | O_CREAT | O_TRUNC, 0644);
    ftruncate(in, 64 << 20);
    int null = open("/dev/null", O_WRONLY), out = open("/tmp/sec-dst", O_RDWR | O_CREAT, 0644);
    SHOW("sendfile huge count", sendfile(null, in, NULL, HUGE_COUNT));
    SHOW("sendfile bad offset", sendfile(null, in, BAD, 10));
    SHOW("copy_file_range huge", copy_file_range(in, &(loff_t){(64 << 20) - 4096}, out,
                                                 &(loff_t){0}, HUGE_COUNT, 0));
    SHOW("copy_file_range bad offset", copy_file_range(in, BAD, out, NULL, 10, 0));
    int p[2];
    pipe(p);
    SHOW("splice huge count", splice(in, &(loff_t){0}, p[1], NULL, HUGE_COUNT, 0));
    SHOW("splice bad offset", splice(p[0], NULL, out, BAD, 10, 0));
    SHOW("tee huge count", tee(p[0], null, HUGE_COUNT, 0));
    SHOW("getdents bad buffer", syscall(SYS_getdents, open("/", O_RDONLY), BAD, 1 << 20));
    SHOW("getdents huge count", syscall(SYS_getdents, open("/", O_RDONLY), BAD, HUGE_COUNT));
    SHOW("getaffinity huge length", syscall(SYS_sched_getaffinity, 0, 1UL << 31, BAD));
    SHOW("setaffinity huge length", syscall(SYS_sched_setaffinity, 0, ~0UL, BAD));
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(1000, &set);
    SHOW("setaffinity to no CPU of the guest", sched_setaffinity(0, sizeof set, &set));
    SHOW("fadvise huge", syscall(SYS_fadvise64, in, HUGE_COUNT, HUGE_COUNT, 0));
    SHOW("readahead huge", readahead(in, HUGE_COUNT, HUGE_COUNT));
    unlink("/tmp/sec-src");
    unlink("/tmp/sec-dst");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    locks();
    watches();
    memfds();
    transfers();
    pid_t pid = fork();
    if (pid == 0)
        _exit(getppid() > 0 ? 7 : 1);
    int st;
    waitpid(pid, &st, 0);
    printf("still serving: a child's exit %d\n", WEXITSTATUS(st));
    return 0;
}
