/* Extended attributes as Linux has them on ext2 and tmpfs: set, get, list
 * and remove on a file, a directory and a symlink (the l* calls), by fd,
 * the errors (names, sizes, flags, namespaces, permissions, read-only
 * mounts, pipes, /proc, bad pointers) and the *xattrat calls.
 * Usage: xattrs all DIR (DIR empty, on the file system under test);
 *        xattrs probe PATH... (what coreutils' ls asks of each path);
 *        xattrs flood FILE (attributes until the file system refuses one). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e)
{
    switch (e) {
    case ENODATA: return "ENODATA";
    case ERANGE: return "ERANGE";
    case E2BIG: return "E2BIG";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EROFS: return "EROFS";
    case ENOSPC: return "ENOSPC";
    case ENOSYS: return "ENOSYS";
    default: return strerror(e);
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%-40s %ld %s\n", label, r_, r_ < 0 ? en(errno) : ""); } while (0)

static char buf[70000];
static char *bad = (char *)8;          /* an unmapped address */
static volatile size_t huge = (size_t)-1;

/* the value of name at path (l: without following), or its error */
static void value(const char *label, const char *path, const char *name, int l)
{
    errno = 0;
    ssize_t n = (l ? lgetxattr : getxattr)(path, name, buf, sizeof buf);
    if (n < 0)
        printf("%-40s %s\n", label, en(errno));
    else
        printf("%-40s \"%.*s\" (%zd)\n", label, (int)n, buf, n);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the names listxattr gives, sorted (their order is each file system's) */
static void names(const char *label, const char *path, int l)
{
    char *v[512];
    int k = 0;
    errno = 0;
    ssize_t n = (l ? llistxattr : listxattr)(path, buf, sizeof buf);
    if (n < 0) {
        printf("%-40s %s\n", label, en(errno));
        return;
    }
    for (char *p = buf; p < buf + n && k < 512; p += strlen(p) + 1)
        v[k++] = p;
    qsort(v, k, sizeof *v, cmp);
    printf("%-40s (%zd)", label, n);
    for (int i = 0; i < k; i++)
        printf(" %s", v[i]);
    printf("\n");
}

static char path[4096], fpath[4096], dpath[4096], lpath[4096], spath[4096], ropath[4096];

static void as_user(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(1000) || setuid(1000))
            _exit(2);
        printf("-- as uid 1000\n");
        value("user get, 0644 root file", fpath, "user.a", 0);
        SHOW("user set, 0644 root file", setxattr(fpath, "user.u", "x", 1, 0));
        SHOW("user remove, 0644 root file", removexattr(fpath, "user.a"));
        value("trusted get", fpath, "trusted.t", 0);
        SHOW("trusted set", setxattr(fpath, "trusted.u", "x", 1, 0));
        value("security get", fpath, "security.s", 0);
        SHOW("security set", setxattr(fpath, "security.u", "x", 1, 0));
        SHOW("security remove", removexattr(fpath, "security.s"));
        names("list hides trusted", fpath, 0);
        SHOW("user set, sticky dir not mine", setxattr(spath, "user.u", "x", 1, 0));
        value("user get, sticky dir not mine", spath, "user.s", 0);
        char mine[4200];
        snprintf(mine, sizeof mine, "%s/mine", spath);
        SHOW("mkdir mine in sticky dir", mkdir(mine, 01777));
        SHOW("user set, sticky dir mine", setxattr(mine, "user.u", "x", 1, 0));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    chmod(fpath, 0600);
    pid = fork();
    if (pid == 0) {
        if (setgid(1000) || setuid(1000))
            _exit(2);
        value("user get, 0600 root file", fpath, "user.a", 0);
        names("list, 0600 root file", fpath, 0);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    chmod(fpath, 0644);
}

static void all(const char *dir)
{
    char big[300];
    snprintf(fpath, sizeof fpath, "%s/f", dir);
    snprintf(dpath, sizeof dpath, "%s/d", dir);
    snprintf(lpath, sizeof lpath, "%s/l", dir);
    snprintf(spath, sizeof spath, "%s/sticky", dir);
    snprintf(ropath, sizeof ropath, "%s/ro", dir);
    close(open(fpath, O_CREAT | O_WRONLY, 0644));
    mkdir(dpath, 0755);
    symlink("f", lpath);
    mkdir(spath, 0755);
    chmod(spath, 01777);
    chmod(dir, 0755);

    printf("-- a file\n");
    names("list, none yet", fpath, 0);
    SHOW("set user.a one", setxattr(fpath, "user.a", "one", 3, 0));
    SHOW("get user.a, size 0", getxattr(fpath, "user.a", NULL, 0));
    value("get user.a", fpath, "user.a", 0);
    SHOW("get user.a, 2-byte buffer", getxattr(fpath, "user.a", buf, 2));
    SHOW("set user.a, XATTR_CREATE", setxattr(fpath, "user.a", "x", 1, XATTR_CREATE));
    SHOW("set user.b, XATTR_REPLACE", setxattr(fpath, "user.b", "x", 1, XATTR_REPLACE));
    SHOW("set user.b, flags 4", setxattr(fpath, "user.b", "x", 1, 4));
    SHOW("set user.a two, XATTR_REPLACE", setxattr(fpath, "user.a", "two", 3, XATTR_REPLACE));
    value("get user.a again", fpath, "user.a", 0);
    SHOW("set user.empty, empty", setxattr(fpath, "user.empty", "", 0, XATTR_CREATE));
    value("get user.empty", fpath, "user.empty", 0);
    SHOW("set user.b, XATTR_CREATE", setxattr(fpath, "user.b", "bee", 3, XATTR_CREATE));
    SHOW("set trusted.t", setxattr(fpath, "trusted.t", "tee", 3, 0));
    SHOW("set security.s", setxattr(fpath, "security.s", "ess", 3, 0));
    names("list", fpath, 0);
    SHOW("list, size 0", listxattr(fpath, NULL, 0));
    SHOW("list, 4-byte buffer", listxattr(fpath, buf, 4));
    SHOW("get user.nope", getxattr(fpath, "user.nope", buf, sizeof buf));
    SHOW("remove user.b", removexattr(fpath, "user.b"));
    SHOW("remove user.b again", removexattr(fpath, "user.b"));
    value("get user.b", fpath, "user.b", 0);
    memset(big, 'n', sizeof big);
    memcpy(big, "user.", 5);
    big[255] = 0;
    SHOW("set a 255-byte name", setxattr(fpath, big, "v", 1, 0));
    value("get the 255-byte name", fpath, big, 0);
    SHOW("remove the 255-byte name", removexattr(fpath, big));
    big[255] = 'n';
    big[256] = 0;
    SHOW("set a 256-byte name", setxattr(fpath, big, "v", 1, 0));
    SHOW("get a 256-byte name", getxattr(fpath, big, buf, 10));
    SHOW("set an empty name", setxattr(fpath, "", "v", 1, 0));
    SHOW("get an empty name", getxattr(fpath, "", buf, 10));
    SHOW("set user. alone", setxattr(fpath, "user.", "v", 1, 0));
    SHOW("get user. alone", getxattr(fpath, "user.", buf, 10));
    SHOW("set foo.bar", setxattr(fpath, "foo.bar", "v", 1, 0));
    SHOW("get foo.bar", getxattr(fpath, "foo.bar", buf, 10));
    SHOW("set system.foo", setxattr(fpath, "system.foo", "v", 1, 0));
    SHOW("set a 65537-byte value", setxattr(fpath, "user.big", buf, 65537, 0));
    SHOW("set a 1000-byte value", setxattr(fpath, "user.k", buf, 1000, 0));
    SHOW("get it, size 0", getxattr(fpath, "user.k", NULL, 0));
    SHOW("remove it", removexattr(fpath, "user.k"));

    printf("-- ctime\n");
    struct stat st0, st1;
    struct timespec now;
    stat(fpath, &st0);
    /* 50 ms past the old ctime (in whole nanoseconds: a wait that ended at
       the next second let a loaded host stamp the change no later) */
    long long ctime0 = st0.st_ctim.tv_sec * 1000000000LL + st0.st_ctim.tv_nsec;
    struct timespec tick = {0, 1000000};
    do {
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_REALTIME, &now);
    } while (now.tv_sec * 1000000000LL + now.tv_nsec <= ctime0 + 50000000LL);
    setxattr(fpath, "user.c", "c", 1, 0);
    stat(fpath, &st1);
    printf("set changes ctime: %s\n", st1.st_ctim.tv_sec * 1000000000LL + st1.st_ctim.tv_nsec >
           st0.st_ctim.tv_sec * 1000000000LL + st0.st_ctim.tv_nsec ? "yes" : "no");
    printf("mtime kept: %s\n", st1.st_mtim.tv_sec == st0.st_mtim.tv_sec &&
           st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec ? "yes" : "no");
    removexattr(fpath, "user.c");

    printf("-- a directory\n");
    SHOW("set user.d", setxattr(dpath, "user.d", "dee", 3, 0));
    value("get user.d", dpath, "user.d", 0);
    names("list", dpath, 0);
    SHOW("set user.s on the sticky dir", setxattr(spath, "user.s", "ess", 3, 0));

    printf("-- a symlink\n");
    SHOW("lset user.l", lsetxattr(lpath, "user.l", "x", 1, 0));
    value("lget user.l", lpath, "user.l", 1);
    SHOW("set user.via through it", setxattr(lpath, "user.via", "via", 3, 0));
    value("get user.via on the file", fpath, "user.via", 0);
    value("get user.via through it", lpath, "user.via", 0);
    value("lget user.via", lpath, "user.via", 1);
    SHOW("lset trusted.l", lsetxattr(lpath, "trusted.l", "ell", 3, 0));
    value("lget trusted.l", lpath, "trusted.l", 1);
    names("llist", lpath, 1);
    names("list through it", lpath, 0);
    errno = 0;
    ssize_t n = readlink(lpath, buf, sizeof buf);
    printf("%-40s %.*s\n", "readlink still", (int)(n > 0 ? n : 0), buf);
    SHOW("lremove trusted.l", lremovexattr(lpath, "trusted.l"));
    SHOW("lremove trusted.l again", lremovexattr(lpath, "trusted.l"));
    SHOW("remove user.via through it", removexattr(lpath, "user.via"));

    printf("-- by fd\n");
    int fd = open(fpath, O_RDONLY);
    SHOW("fset user.fd", fsetxattr(fd, "user.fd", "fd", 2, 0));
    errno = 0;
    n = fgetxattr(fd, "user.fd", buf, sizeof buf);
    printf("%-40s %zd %.*s\n", "fget user.fd", n, (int)(n > 0 ? n : 0), buf);
    SHOW("flist, size 0", flistxattr(fd, NULL, 0));
    SHOW("fremove user.fd", fremovexattr(fd, "user.fd"));
    SHOW("fremove user.fd again", fremovexattr(fd, "user.fd"));
    close(fd);
    fd = open(fpath, O_PATH);
    SHOW("fget, O_PATH fd", fgetxattr(fd, "user.a", buf, 10));
    SHOW("flist, O_PATH fd", flistxattr(fd, buf, 10));
    close(fd);
    SHOW("fget, closed fd", fgetxattr(fd, "user.a", buf, 10));
    int p[2];
    pipe(p);
    SHOW("pipe: fget user.x", fgetxattr(p[0], "user.x", buf, 10));
    SHOW("pipe: fset user.x", fsetxattr(p[0], "user.x", "x", 1, 0));
    SHOW("pipe: fget security.x", fgetxattr(p[0], "security.x", buf, 10));
    SHOW("pipe: fset trusted.x", fsetxattr(p[0], "trusted.x", "x", 1, 0));
    SHOW("pipe: flist", flistxattr(p[0], buf, sizeof buf));
    close(p[0]);
    close(p[1]);

    printf("-- /proc\n");
    SHOW("get user.x", getxattr("/proc/self/status", "user.x", buf, 10));
    SHOW("get security.selinux", getxattr("/proc/self/status", "security.selinux", buf, 10));
    SHOW("set user.x", setxattr("/proc/self/status", "user.x", "x", 1, 0));
    SHOW("list", listxattr("/proc/self/status", buf, sizeof buf));

    printf("-- bad pointers\n");
    SHOW("get, bad name", getxattr(fpath, bad, buf, 10));
    SHOW("get, bad path", getxattr(bad, "user.a", buf, 10));
    SHOW("get, bad value buffer", getxattr(fpath, "user.a", bad, 10));
    SHOW("get, bad buffer, size 0", getxattr(fpath, "user.a", bad, 0));
    SHOW("set, bad value", setxattr(fpath, "user.x", bad, 10, 0));
    SHOW("set, bad value, size 0", setxattr(fpath, "user.x", bad, 0, 0));
    SHOW("remove it", removexattr(fpath, "user.x"));
    SHOW("list, bad buffer", listxattr(fpath, bad, 100));
    SHOW("list, bad buffer, size 0", listxattr(fpath, bad, 0));
    SHOW("remove, bad name", removexattr(fpath, bad));
    SHOW("get, huge size", getxattr(fpath, "user.a", buf, huge));
    SHOW("list, huge size", listxattr(fpath, buf, huge));
    SHOW("set, huge size", setxattr(fpath, "user.a", buf, (size_t)-1, 0));

    printf("-- the *xattrat calls\n");
#ifndef SYS_getxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
#endif
    struct { uint64_t value; uint32_t size, flags; } args = {(uintptr_t)"at", 2, 0};
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    SHOW("setxattrat f user.at", syscall(SYS_setxattrat, dfd, "f", 0, "user.at", &args, sizeof args));
    args.value = (uintptr_t)buf;
    args.size = 10;
    SHOW("getxattrat f user.at", syscall(SYS_getxattrat, dfd, "f", 0, "user.at", &args, sizeof args));
    SHOW("getxattrat l, nofollow", syscall(SYS_getxattrat, dfd, "l", AT_SYMLINK_NOFOLLOW, "user.at",
                                            &args, sizeof args));
    SHOW("getxattrat, usize 8", syscall(SYS_getxattrat, dfd, "f", 0, "user.at", &args, 8));
    args.flags = 1;
    SHOW("getxattrat, flags 1", syscall(SYS_getxattrat, dfd, "f", 0, "user.at", &args, sizeof args));
    args.flags = 0;
    SHOW("getxattrat, at_flags 0x8000", syscall(SYS_getxattrat, dfd, "f", 0x8000, "user.at", &args,
                                                 sizeof args));
    SHOW("listxattrat the dir, empty path", syscall(SYS_listxattrat, dfd, "", AT_EMPTY_PATH, NULL, 0));
    SHOW("removexattrat f user.at", syscall(SYS_removexattrat, dfd, "f", 0, "user.at"));
    SHOW("removexattrat f user.at again", syscall(SYS_removexattrat, dfd, "f", 0, "user.at"));
    close(dfd);

    as_user();

    printf("-- a read-only mount\n");
    mkdir(ropath, 0755);
    SHOW("mount a tmpfs there", mount("none", ropath, "tmpfs", 0, NULL));
    char rof[4200];
    snprintf(rof, sizeof rof, "%s/f", ropath);
    close(open(rof, O_CREAT | O_WRONLY, 0644));
    setxattr(rof, "user.r", "r", 1, 0);
    SHOW("remount it read-only", mount("none", ropath, NULL, MS_REMOUNT | MS_RDONLY, NULL));
    SHOW("set user.x", setxattr(rof, "user.x", "x", 1, 0));
    SHOW("remove user.r", removexattr(rof, "user.r"));
    value("get user.r", rof, "user.r", 0);
    fd = open(rof, O_RDONLY);
    SHOW("fset user.x", fsetxattr(fd, "user.x", "x", 1, 0));
    close(fd);
    umount(ropath);
}

/* What coreutils' ls -l asks: the SELinux label, then whether there is an ACL. */
static void probe(char **paths)
{
    for (; *paths; paths++) {
        errno = 0;
        ssize_t n = lgetxattr(*paths, "security.selinux", buf, 255);
        printf("%s: security.selinux %s", *paths, n < 0 ? en(errno) : "found");
        errno = 0;
        n = getxattr(*paths, "system.posix_acl_access", NULL, 0);
        printf(", system.posix_acl_access %s", n < 0 ? en(errno) : "found");
        errno = 0;
        n = llistxattr(*paths, buf, sizeof buf);
        printf(", llistxattr %s\n", n < 0 ? en(errno) : "ok");
    }
}

/* A hostile guest: attributes until refused, names that never end, sizes
 * past every limit; then every attribute removed again. */
static void flood(const char *file)
{
    char name[64], value[200];
    long n = 0;
    memset(value, 'v', sizeof value);
    close(open(file, O_CREAT | O_WRONLY, 0644));
    errno = 0;
    for (; n < 1000000; n++) {
        snprintf(name, sizeof name, "user.flood-%06ld", n);
        if (setxattr(file, name, value, sizeof value, XATTR_CREATE) < 0)
            break;
    }
    printf("flooded: %ld then %s\n", n, en(errno));
    SHOW("list, size 0", listxattr(file, NULL, 0) > 0);
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(page, 'a', 4096);
    munmap(page + 4096, 4096);
    SHOW("a name with no NUL", setxattr(file, page, "x", 1, 0));
    SHOW("a name running into a hole", setxattr(file, page + 4090, "x", 1, 0));
    SHOW("a value running into a hole", setxattr(file, "user.x", page + 4000, 200, 0));
    SHOW("get into a hole", getxattr(file, "user.flood-000000", page + 4090, 200));
    SHOW("list into a hole", listxattr(file, page + 4090, 65536));
    SHOW("set, 2^63 bytes", setxattr(file, "user.x", page, (size_t)1 << 63, 0));
    long removed = 0;
    for (long i = 0; i < n; i++) {
        snprintf(name, sizeof name, "user.flood-%06ld", i);
        removed += removexattr(file, name) == 0;
    }
    printf("removed: %s\n", removed == n ? "all" : "not all");
    SHOW("list, size 0, at the end", listxattr(file, NULL, 0));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "all"))
        all(argv[2]);
    else if (argc >= 3 && !strcmp(argv[1], "flood"))
        flood(argv[2]);
    else if (argc >= 3 && !strcmp(argv[1], "probe"))
        probe(argv + 2);
    else
        return 2;
    printf("-- exit 0\n");
    return 0;
}
