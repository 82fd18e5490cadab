/* memfd_create, sendfile, copy_file_range, splice, tee, the old getdents,
   CPU affinity, fadvise and readahead, one section per argument, in the
   directory given first: tests/guest/fs/test_fsextras.py runs each natively
   and in a guest and wants the same output. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static const char *dir;
static char buf[1 << 18];

static const char *at(const char *name) {
    static char paths[4][512];
    static int i;
    char *p = paths[i++ & 3];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* A file of n bytes, byte i being 'a' + i % 26. */
static int pattern(const char *name, int n) {
    int fd = open(at(name), O_RDWR | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < n; i++)
        buf[i] = 'a' + i % 26;
    write(fd, buf, n);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Whether fd holds n bytes of the pattern from offset from. */
static const char *holds(int fd, off_t from, int n) {
    static char got[1 << 18];
    if (pread(fd, got, n, 0) != n)
        return "short";
    for (int i = 0; i < n; i++)
        if (got[i] != 'a' + (from + i) % 26)
            return "wrong";
    return "right";
}

static void section_memfd(void) {
    int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    printf("fd ok %d cloexec %d\n", fd >= 0, !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    struct stat st;
    fstat(fd, &st);
    printf("mode %o nlink %ld size %ld\n", st.st_mode, (long)st.st_nlink, (long)st.st_size);
    SHOW("write", write(fd, "hello", 5));
    SHOW("ftruncate", ftruncate(fd, 8192));
    fstat(fd, &st);
    printf("size %ld blocks>0 %d\n", (long)st.st_size, st.st_blocks > 0);
    char *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *private = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("maps %d %d; shared sees '%.5s'\n", shared != MAP_FAILED, private != MAP_FAILED, shared);
    memcpy(shared + 4096, "SHARED", 6);
    char got[8] = {0};
    pread(fd, got, 6, 4096);
    printf("read sees the shared store: %s\n", got);
    pwrite(fd, "WRITE", 5, 100);
    printf("shared map sees the write: %.5s\n", shared + 100);
    memcpy(private, "PRIV", 4);
    pread(fd, got, 5, 0);
    printf("file after a private store: %.5s\n", got);
    if (fork() == 0) {
        memcpy(shared + 200, "CHILD", 5);
        _exit(0);
    }
    wait(NULL);
    pread(fd, got, 5, 200);
    printf("the child's store: %.5s\n", got);
    lseek(fd, 0, SEEK_SET);
    read(fd, got, 5);
    printf("read: %.5s\n", got);
    munmap(shared, 8192);
    munmap(private, 8192);
    char name[300];
    memset(name, 'n', sizeof name);
    name[249] = 0;
    int ok = memfd_create(name, 0);
    printf("249-byte name ok %d\n", ok >= 0);
    close(ok);
    name[249] = 'n', name[250] = 0;
    SHOW("250-byte name", memfd_create(name, 0));
    SHOW("bad flags", memfd_create("x", 0x100));
    SHOW("bad name", syscall(SYS_memfd_create, (char *)8, 0));
    close(fd);
}

static void section_memfd_proc(void) {
    int fd = memfd_create("shown", 0);
    char link[64], target[256] = {0};
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    readlink(link, target, sizeof target - 1);
    printf("link: %s\n", target);
}

static void section_sendfile(void) {
    int in = pattern("src", 100000), out = open(at("dst"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    SHOW("sendfile 70000", sendfile(out, in, NULL, 70000));
    SHOW("sendfile the rest", sendfile(out, in, NULL, 70000));
    SHOW("sendfile at the end", sendfile(out, in, NULL, 70000));
    printf("dst %s, src pos %ld\n", holds(out, 0, 100000), (long)lseek(in, 0, SEEK_CUR));
    off_t off = 26 * 10;
    lseek(in, 5, SEEK_SET);
    ftruncate(out, 0);
    lseek(out, 0, SEEK_SET);
    SHOW("sendfile from an offset", sendfile(out, in, &off, 1000));
    printf("offset %ld, pos %ld, dst %s\n", (long)off, (long)lseek(in, 0, SEEK_CUR),
           holds(out, 0, 1000));
    int p[2];
    pipe(p);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    SHOW("sendfile into a pipe", sendfile(p[1], in, NULL, 100000));
    SHOW("sendfile into a full pipe", sendfile(p[1], in, NULL, 100000));
    SHOW("sendfile from a pipe", sendfile(out, p[0], NULL, 10));
    int app = open(at("dst"), O_WRONLY | O_APPEND);
    SHOW("sendfile to O_APPEND", sendfile(app, in, NULL, 10));
    off = -1;
    SHOW("sendfile negative offset", sendfile(out, in, &off, 10));
    SHOW("sendfile bad offset pointer", sendfile(out, in, (off_t *)8, 10));
    SHOW("sendfile write-only source", sendfile(out, app, NULL, 10));
    close(app); close(p[0]); close(p[1]); close(in); close(out);
}

static void section_copy(void) {
    int in = pattern("csrc", 50000), out = open(at("cdst"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    loff_t a = 0, b = 0;
    SHOW("copy 30000", copy_file_range(in, &a, out, &b, 30000, 0));
    printf("offsets %ld %ld, positions %ld %ld\n", (long)a, (long)b,
           (long)lseek(in, 0, SEEK_CUR), (long)lseek(out, 0, SEEK_CUR));
    SHOW("copy by positions", copy_file_range(in, NULL, out, NULL, 26, 0));
    printf("positions %ld %ld, dst %s\n", (long)lseek(in, 0, SEEK_CUR),
           (long)lseek(out, 0, SEEK_CUR), holds(out, 0, 30000));
    a = 60000;
    SHOW("copy past the end", copy_file_range(in, &a, out, NULL, 100, 0));
    a = 0, b = 10;
    SHOW("copy overlapping", copy_file_range(in, &a, in, &b, 100, 0));
    SHOW("copy flags", copy_file_range(in, NULL, out, NULL, 10, 1));
    int app = open(at("cdst"), O_WRONLY | O_APPEND);
    SHOW("copy to O_APPEND", copy_file_range(in, NULL, app, NULL, 10, 0));
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    SHOW("copy from a directory", copy_file_range(d, NULL, out, NULL, 10, 0));
    int p[2];
    pipe(p);
    SHOW("copy into a pipe", copy_file_range(in, NULL, p[1], NULL, 10, 0));
    close(d); close(app); close(p[0]); close(p[1]); close(in); close(out);
}

static void section_splice(void) {
    int in = pattern("ssrc", 100000), out = open(at("sdst"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    int p[2], q[2];
    pipe(p); pipe(q);
    loff_t off = 0;
    SHOW("file to pipe", splice(in, &off, p[1], NULL, 100000, 0));
    printf("offset %ld pos %ld\n", (long)off, (long)lseek(in, 0, SEEK_CUR));
    SHOW("tee", tee(p[0], q[1], 1000, 0));
    SHOW("pipe to file", splice(p[0], NULL, out, NULL, 100000, 0));
    printf("dst %s pos %ld\n", holds(out, 0, 65536), (long)lseek(out, 0, SEEK_CUR));
    SHOW("tee'd copy to file at 0", splice(q[0], NULL, out, &(loff_t){0}, 5000, 0));
    SHOW("empty, nonblocking", splice(p[0], NULL, out, NULL, 10, SPLICE_F_NONBLOCK));
    SHOW("file to pipe by position", splice(in, NULL, p[1], NULL, 26, 0));
    SHOW("pipe to pipe", splice(p[0], NULL, q[1], NULL, 100, 0));
    int n = read(q[0], buf, sizeof buf);
    printf("q holds %d: %.5s\n", n, buf);
    SHOW("offset on a pipe", splice(p[0], &off, out, NULL, 10, 0));
    SHOW("no pipe", splice(in, NULL, out, NULL, 10, 0));
    SHOW("bad flags", splice(p[0], NULL, out, NULL, 10, 0x100));
    SHOW("tee of one pipe", tee(p[0], p[1], 10, 0));
    SHOW("tee file", tee(in, q[1], 10, 0));
    SHOW("tee empty nonblocking", tee(p[0], q[1], 10, SPLICE_F_NONBLOCK));
    close(p[1]);
    SHOW("pipe with no writer", splice(p[0], NULL, out, NULL, 10, 0));
    signal(SIGPIPE, SIG_IGN);
    close(q[0]);
    SHOW("into a pipe with no reader", splice(in, &(loff_t){0}, q[1], NULL, 10, 0));
    signal(SIGPIPE, SIG_DFL);
    if (fork() == 0) {
        sendfile(q[1], in, &(loff_t){0}, 10);
        _exit(0);
    }
    int st;
    wait(&st);
    printf("sendfile with no reader: signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    close(p[0]); close(q[1]); close(in); close(out);
}

struct old_dirent { unsigned long ino, off; unsigned short reclen; char name[]; };

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

static void section_getdents(void) {
    mkdir(at("gd"), 0755);
    for (const char *n = "abc"; *n; n++) {
        char name[16];
        snprintf(name, sizeof name, "gd/file-%c", *n);
        close(open(at(name), O_WRONLY | O_CREAT, 0644));
    }
    mkdir(at("gd/sub"), 0755);
    symlink("x", at("gd/link"));
    int fd = open(at("gd"), O_RDONLY | O_DIRECTORY);
    char names[16][32];
    int count = 0;
    long n;
    while ((n = syscall(SYS_getdents, fd, buf, 64)) > 0)
        for (long at_ = 0; at_ < n;) {
            struct old_dirent *d = (struct old_dirent *)(buf + at_);
            snprintf(names[count++], 32, "%s %d", d->name, buf[at_ + d->reclen - 1]);
            at_ += d->reclen;
        }
    printf("end = %ld\n", n);
    qsort(names, count, 32, by_name);
    for (int i = 0; i < count; i++)
        printf("  %s\n", names[i]);
    SHOW("too small", syscall(SYS_getdents, fd, buf, 8));
    lseek(fd, 0, SEEK_SET);
    SHOW("bad buffer", syscall(SYS_getdents, fd, (char *)8, 4096));
    SHOW("not a directory", syscall(SYS_getdents, 0, buf, 4096));
    close(fd);
}

static void section_cpus(void) {
    cpu_set_t set;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CPU_ZERO(&set);
    SHOW("getaffinity 8", syscall(SYS_sched_getaffinity, 0, 8, &set));
    printf("some of the online CPUs: %d\n", CPU_COUNT(&set) >= 1 && CPU_COUNT(&set) <= cpus);
    SHOW("getaffinity 4", syscall(SYS_sched_getaffinity, 0, 4, &set));
    SHOW("getaffinity 12", syscall(SYS_sched_getaffinity, 0, 12, &set));
    SHOW("getaffinity no such pid", syscall(SYS_sched_getaffinity, 0x3fffffff, 8, &set));
    SHOW("getaffinity bad pointer", syscall(SYS_sched_getaffinity, 0, 8, (void *)8));
    CPU_ZERO(&set);
    SHOW("setaffinity none", sched_setaffinity(0, sizeof set, &set));
    CPU_SET(0, &set);
    SHOW("setaffinity cpu 0", sched_setaffinity(0, sizeof set, &set));
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    printf("now %d CPU, cpu 0 %d\n", CPU_COUNT(&set), CPU_ISSET(0, &set));
    if (fork() == 0) {
        sched_getaffinity(0, sizeof set, &set);
        printf("child: %d CPU\n", CPU_COUNT(&set));
        unsigned cpu = 99, node = 99;
        SHOW("child getcpu", syscall(SYS_getcpu, &cpu, &node, NULL));
        printf("child on cpu 0: %d, node %u\n", cpu == 0, node);
        _exit(0);
    }
    wait(NULL);
    SHOW("setaffinity no such pid", sched_setaffinity(0x3fffffff, sizeof set, &set));
    SHOW("setaffinity bad pointer", syscall(SYS_sched_setaffinity, 0, 8, (void *)8));
    unsigned cpu = 99;
    SHOW("getcpu", syscall(SYS_getcpu, &cpu, NULL, NULL));
    printf("cpu in range: %d\n", cpu < (unsigned)cpus);
    SHOW("getcpu bad pointer", syscall(SYS_getcpu, (void *)8, NULL, NULL));
}

static void section_advice(void) {
    int fd = pattern("adv", 10000), p[2];
    pipe(p);
    SHOW("fadvise sequential", syscall(SYS_fadvise64, fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    SHOW("fadvise dontneed", syscall(SYS_fadvise64, fd, 0, 100, POSIX_FADV_DONTNEED));
    SHOW("fadvise bad advice", syscall(SYS_fadvise64, fd, 0, 0, 99));
    SHOW("fadvise pipe", syscall(SYS_fadvise64, p[0], 0, 0, 0));
    SHOW("fadvise bad fd", syscall(SYS_fadvise64, 99, 0, 0, 0));
    SHOW("readahead", readahead(fd, 0, 4096));
    SHOW("readahead pipe", readahead(p[0], 0, 4096));
    SHOW("readahead write end", readahead(p[1], 0, 4096));
    int wo = open(at("adv"), O_WRONLY);
    SHOW("readahead write-only", readahead(wo, 0, 4096));
    close(wo); close(fd); close(p[0]); close(p[1]);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "memfd")) section_memfd();
        else if (!strcmp(argv[i], "memfd_proc")) section_memfd_proc();
        else if (!strcmp(argv[i], "sendfile")) section_sendfile();
        else if (!strcmp(argv[i], "copy")) section_copy();
        else if (!strcmp(argv[i], "splice")) section_splice();
        else if (!strcmp(argv[i], "getdents")) section_getdents();
        else if (!strcmp(argv[i], "cpus")) section_cpus();
        else if (!strcmp(argv[i], "advice")) section_advice();
        else { printf("unknown section\n"); return 2; }
    }
    return 0;
}
