/* File system calls on tmpfs, /dev and a read-only root, printed so that a
 * native run and a guest run can be compared line by line: no device or
 * inode numbers, no clock times (only times the program set itself).
 * usage: fsops SECTION...   sections: files dirs attrs mounts dev rofs */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static void report(const char *what, long r)
{
    if (r < 0)
        printf("%s = -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s = %ld\n", what, r);
}
#define T(expr) report(#expr, (long)(expr))

static void show(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        printf("stat %s: %s\n", path, strerrorname_np(errno));
        return;
    }
    printf("stat %s: mode=%o nlink=%lu uid=%u gid=%u size=%lld blocks=%lld rdev=%u:%u\n",
           path, st.st_mode, (unsigned long)st.st_nlink, st.st_uid, st.st_gid,
           (long long)st.st_size, (long long)st.st_blocks, major(st.st_rdev), minor(st.st_rdev));
}

static void cat(const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("cat %s: %s\n", path, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    printf("cat %s: %zd [", path, n);
    for (ssize_t i = 0; i < n; i++)
        printf(buf[i] >= 32 && buf[i] < 127 ? "%c" : "\\%o", (unsigned char)buf[i]);
    printf("]\n");
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *path)
{
    DIR *d = opendir(path);
    char *names[256];
    int n = 0;
    struct dirent *e;
    if (!d) {
        printf("ls %s: %s\n", path, strerrorname_np(errno));
        return;
    }
    while ((e = readdir(d)) && n < 256)
        if (asprintf(&names[n], "%s/%d", e->d_name, e->d_type) > 0)
            n++;
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("ls %s:", path);
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
}

static void put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, text, strlen(text)) < 0)
        printf("put %s: %s\n", path, strerrorname_np(errno));
    close(fd);
}

static void files(void)
{
    char buf[64];
    int fd, fd2;
    T(mkdir("/tmp/f", 0755));
    T(chdir("/tmp/f"));
    T(fd = open("a", O_CREAT | O_EXCL | O_WRONLY, 0666));
    T(write(fd, "hello\n", 6));
    show("a");
    T(open("a", O_CREAT | O_EXCL | O_WRONLY, 0666));
    T(open("a/", O_CREAT | O_WRONLY, 0666));
    T(open("a/", O_RDONLY));
    T(open("nothere/x", O_CREAT | O_WRONLY, 0666));
    T(close(fd));
    T(fd = open("a", O_WRONLY | O_APPEND));
    T(write(fd, "world\n", 6));
    T(pwrite(fd, "X", 1, 0));            /* O_APPEND: at the end anyway */
    T(lseek(fd, 0, SEEK_CUR));
    T(close(fd));
    cat("a");
    T(fd = open("a", O_RDWR));
    T(pwrite(fd, "J", 1, 0));
    T(lseek(fd, 3, SEEK_SET));
    struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
    T(writev(fd, iov, 2));
    T(pwritev(fd, iov, 1, 10));
    char r1[3] = {0}, r2[3] = {0};
    struct iovec riov[2] = {{r1, 2}, {r2, 2}};
    T(preadv(fd, riov, 2, 1));
    printf("preadv: %s %s\n", r1, r2);
    cat("a");
    T(ftruncate(fd, 3));
    show("a");
    T(truncate("a", 10));
    cat("a");
    T(ftruncate(fd, -1));
    T(truncate("/tmp/f", 0));
    /* sparse: one page at 0 and one at 4 GiB */
    T(pwrite(fd, "end", 3, 1LL << 32));
    show("a");
    T(lseek(fd, -3, SEEK_END));
    memset(buf, 0, sizeof buf);
    T(read(fd, buf, sizeof buf));
    printf("tail: %s\n", buf);
    memset(buf, 1, sizeof buf);
    T(pread(fd, buf, 16, 1LL << 31));
    printf("hole zero: %d\n", buf[0] == 0 && !memcmp(buf, buf + 1, 15));
    T(ftruncate(fd, 5000));
    show("a");
    T(close(fd));
    T(fd = open("ro", O_CREAT | O_RDONLY, 0600));
    T(write(fd, "x", 1));
    T(ftruncate(fd, 0));
    T(close(fd));
    T(fd = creat("c", 0640));
    T(write(fd, "creat", 5));
    T(close(fd));
    show("c");
    T(fd = open("c", O_WRONLY | O_TRUNC));
    T(close(fd));
    show("c");
    /* an unlinked file lives on while open */
    T(fd = open("tmpfile", O_CREAT | O_RDWR, 0600));
    T(unlink("tmpfile"));
    T(write(fd, "still here", 10));
    memset(buf, 0, sizeof buf);
    T(pread(fd, buf, 10, 0));
    printf("unlinked: %s\n", buf);
    struct stat st;
    T(fstat(fd, &st));
    printf("fstat unlinked: nlink=%lu size=%lld\n", (unsigned long)st.st_nlink, (long long)st.st_size);
    T(close(fd));
    /* a dangling symlink with O_CREAT makes its target */
    T(symlink("target", "dangling"));
    T(fd2 = open("dangling", O_CREAT | O_WRONLY, 0644));
    T(close(fd2));
    show("target");
    T(open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644));
    T(open("dangling", O_RDONLY | O_NOFOLLOW));
    T(fd = open("a", O_RDONLY));
    T(fsync(fd));
    T(fdatasync(fd));
    T(syncfs(fd));
    T(close(fd));
    list(".");
    show(".");
}

static void dirs(void)
{
    T(mkdir("/tmp/d", 0777));
    T(chdir("/tmp/d"));
    show(".");
    T(mkdir("x", 0700));
    T(mkdir("x/y", 0755));
    T(mkdir("x/y/", 0755));
    T(mkdir("x", 0755));
    T(mkdir(".", 0755));
    T(mkdir("z/", 0755));
    show("x");
    show(".");
    put("f", "file f\n");
    put("g", "file g\n");
    T(rmdir("x"));
    T(rmdir("f"));
    T(rmdir("x/."));
    T(rmdir("x/.."));
    T(unlink("x"));
    T(unlink("f/"));
    T(unlink("nothere"));
    T(rename("f", "x/y"));
    T(rename("x", "f"));
    T(rename("x", "x/y/inside"));
    T(rename("x/y", "x"));
    T(rename("x/y", "z/y"));
    show("z/y");
    show("x");
    T(rename("f", "f2"));
    T(rename("f2", "g"));
    cat("g");
    show("f2");
    put("f", "new f\n");
    T(renameat2(AT_FDCWD, "f", AT_FDCWD, "g", RENAME_NOREPLACE));
    T(renameat2(AT_FDCWD, "f", AT_FDCWD, "g", RENAME_EXCHANGE));
    cat("f");
    cat("g");
    T(renameat2(AT_FDCWD, "f", AT_FDCWD, "z", RENAME_EXCHANGE));
    show("f");
    show("z");
    T(renameat2(AT_FDCWD, "z", AT_FDCWD, "f", RENAME_EXCHANGE));
    T(renameat2(AT_FDCWD, "f", AT_FDCWD, "none", RENAME_EXCHANGE));
    T(renameat2(AT_FDCWD, "f", AT_FDCWD, "g", RENAME_NOREPLACE | RENAME_EXCHANGE));
    T(rename(".", "dot"));
    T(rename("g", "g/"));
    T(mkdir("empty", 0755));
    T(rename("z", "empty"));
    show("empty");
    T(rename("x", "empty"));
    T(link("g", "h"));
    show("g");
    T(link("g", "h"));
    T(link("z", "zlink"));
    T(link("nothere", "h2"));
    T(unlink("g"));
    show("h");
    cat("h");
    T(symlink("h", "s"));
    T(symlink("", "s2"));
    T(symlink("h", "s"));
    char buf[300] = {0};
    T(readlink("s", buf, sizeof buf));
    printf("readlink: %s\n", buf);
    T(readlink("h", buf, sizeof buf));
    show("s");
    cat("s");
    char longt[201];
    memset(longt, 'l', 200);
    longt[200] = 0;
    T(symlink(longt, "long"));
    show("long");
    T(mkdir("loop", 0755));
    T(symlink("self", "loop/self"));
    T(open("loop/self", O_RDONLY));
    T(unlinkat(AT_FDCWD, "empty", 0));
    T(unlinkat(AT_FDCWD, "empty", AT_REMOVEDIR));
    T(unlinkat(AT_FDCWD, "h", 0x8000));
    int dfd;
    T(dfd = open("z", O_RDONLY | O_DIRECTORY));
    T(mkdirat(dfd, "sub", 0700));
    T(symlinkat("../h", dfd, "up"));
    T(linkat(AT_FDCWD, "h", dfd, "hl", 0));
    T(renameat(dfd, "hl", AT_FDCWD, "hl2"));
    T(unlinkat(dfd, "sub", AT_REMOVEDIR));
    T(fchdir(dfd));
    T(mkdir("../fromz", 0755));
    T(close(dfd));
    char cwd[256];
    T(getcwd(cwd, sizeof cwd) != NULL);
    printf("cwd: %s\n", cwd);
    cat("up");
    T(chdir("/tmp/d"));
    list(".");
    list("z");
    show(".");
}

static void attrs(void)
{
    T(mkdir("/tmp/at", 0755));
    T(chdir("/tmp/at"));
    T(umask(077));
    T(umask(022));
    put("f", "data");
    T(chmod("f", 04755));
    show("f");
    T(chown("f", -1, -1));
    show("f");
    T(chmod("f", 02750));
    T(chown("f", 1000, 100));
    show("f");
    T(lchown("f", 2000, -1));
    int fd;
    T(fd = open("f", O_RDONLY));
    T(fchmod(fd, 0600));
    T(fchown(fd, 0, 0));
    T(close(fd));
    show("f");
    T(symlink("f", "s"));
    T(lchown("s", 7, 8));
    show("s");
    show("f");
    T(fchmodat(AT_FDCWD, "s", 0644, 0));
    show("f");
    T(access("f", R_OK | W_OK));
    T(access("f", X_OK));
    T(access("f", 8));
    T(umask(0));
    T(mkdir("open", 0777));
    T(mknod("fifo", S_IFIFO | 0644, 0));
    T(mknod("null", S_IFCHR | 0666, makedev(1, 3)));
    T(mknod("blk", S_IFBLK | 0600, makedev(7, 0)));
    T(mknod("reg", 0644, 0));
    T(mknod("dir", S_IFDIR | 0644, 0));
    T(mknod("bad", 0170000 | 0644, 0));
    T(umask(022));
    show("open");
    show("fifo");
    show("null");
    show("blk");
    show("reg");
    T(fd = open("null", O_RDWR));
    T(write(fd, "gone", 4));
    char c;
    T(read(fd, &c, 1));
    T(close(fd));
    struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
    T(utimensat(AT_FDCWD, "f", ts, 0));
    struct stat st;
    T(stat("f", &st));
    printf("times: a=%ld.%09ld m=%ld.%09ld\n", st.st_atim.tv_sec, st.st_atim.tv_nsec,
           st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {5, 0}};
    T(utimensat(AT_FDCWD, "f", omit, 0));
    T(stat("f", &st));
    printf("times: a=%ld.%09ld m=%ld.%09ld\n", st.st_atim.tv_sec, st.st_atim.tv_nsec,
           st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    T(utimensat(AT_FDCWD, "f", bad, 0));
    struct timeval tv[2] = {{200, 5}, {300, 7}};
    T(utimes("f", tv));
    T(stat("f", &st));
    printf("times: a=%ld.%09ld m=%ld.%09ld\n", st.st_atim.tv_sec, st.st_atim.tv_nsec,
           st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    T(utimensat(AT_FDCWD, "f", NULL, 0));
    T(stat("f", &st));
    printf("now after 2001: %d\n", st.st_mtim.tv_sec > 1000000000);
    T(utimensat(AT_FDCWD, "f", ts, 0));
    T(fd = open("f", O_WRONLY | O_TRUNC));
    T(fstat(fd, &st));
    printf("O_TRUNC moved mtime: %d\n", st.st_mtim.tv_sec != 1100000000);
    T(close(fd));
    T(utimensat(AT_FDCWD, "f", ts, 0));
    T(truncate("f", 0));
    T(stat("f", &st));
    printf("same-size truncate kept mtime: %d\n", st.st_mtim.tv_sec == 1100000000);
}

static void statfs_show(const char *path)
{
    struct statfs s;
    if (statfs(path, &s) < 0) {
        printf("statfs %s: %s\n", path, strerrorname_np(errno));
        return;
    }
    printf("statfs %s: type=%lx bsize=%ld blocks=%ld bfree=%ld bavail=%ld files=%ld ffree=%ld "
           "namelen=%ld frsize=%ld flags=%lx\n", path, (long)s.f_type, (long)s.f_bsize,
           (long)s.f_blocks, (long)s.f_bfree, (long)s.f_bavail, (long)s.f_files,
           (long)s.f_ffree, (long)s.f_namelen, (long)s.f_frsize, (long)s.f_flags);
}

static void mounts(void)
{
    struct stat a, b;
    char chunk[40000];
    memset(chunk, 'm', sizeof chunk);
    T(mkdir("/tmp/m", 0755));
    T(mount("none", "/tmp/m", "nosuchfs", 0, NULL));
    T(mount("none", "/tmp/m", "tmpfs", 0, "size=64k,nr_inodes=8,mode=700"));
    T(mount("none", "/tmp/m", "tmpfs", 0, "bogus=1"));
    show("/tmp/m");
    statfs_show("/tmp/m");
    T(stat("/tmp", &a));
    T(stat("/tmp/m", &b));
    printf("own st_dev: %d\n", a.st_dev != b.st_dev);
    int fd;
    T(fd = open("/tmp/m/big", O_CREAT | O_WRONLY, 0644));
    T(write(fd, chunk, sizeof chunk));
    T(write(fd, chunk, sizeof chunk));          /* short: the rest of 64 KiB */
    T(write(fd, chunk, sizeof chunk));          /* ENOSPC */
    statfs_show("/tmp/m");
    T(pwrite(fd, "x", 1, 1 << 20));
    T(ftruncate(fd, 4096));
    statfs_show("/tmp/m");
    T(close(fd));
    T(link("/tmp/m/big", "/tmp/m/big2"));
    statfs_show("/tmp/m");
    T(unlink("/tmp/m/big"));
    T(unlink("/tmp/m/big2"));
    statfs_show("/tmp/m");
    char name[32];
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof name, "/tmp/m/n%d", i);
        printf("%s: ", name);
        T(mknod(name, S_IFREG | 0600, 0));
    }
    statfs_show("/tmp/m");
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof name, "/tmp/m/n%d", i);
        unlink(name);
    }
    put("/tmp/xdev", "other mount\n");
    T(rename("/tmp/xdev", "/tmp/m/a"));
    T(link("/tmp/xdev", "/tmp/m/a"));
    T(mkdir("/tmp/m/sub", 0755));
    T(mount("inner", "/tmp/m/sub", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=100"));
    statfs_show("/tmp/m/sub");
    T(mknod("/tmp/m/sub/null", S_IFCHR | 0666, makedev(1, 3)));
    T(open("/tmp/m/sub/null", O_WRONLY));
    T(chdir("/tmp/m/sub"));
    T(stat("..", &a));
    T(stat("/tmp/m", &b));
    printf("dotdot crosses: %d\n", a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    T(rmdir("/tmp/m/sub"));
    T(umount("/tmp/m"));
    T(umount("/tmp/m/sub"));
    T(chdir("/"));
    T(umount("/tmp/m/sub/"));
    T(umount("/tmp/m/sub"));
    T(mount(NULL, "/tmp/m", NULL, MS_REMOUNT | MS_RDONLY, NULL));
    T(mkdir("/tmp/m/ro", 0755));
    T(open("/tmp/m/sub", O_RDONLY | O_DIRECTORY) >= 0);
    T(access("/tmp/m/sub", W_OK));
    statfs_show("/tmp/m");
    T(mount(NULL, "/tmp/m", NULL, MS_REMOUNT, NULL));
    T(mkdir("/tmp/m/rw", 0755));
    T(mkdir("/tmp/bind", 0755));
    T(mount("/tmp/m/rw", "/tmp/bind", NULL, MS_BIND, NULL));
    put("/tmp/bind/via-bind", "bound\n");
    cat("/tmp/m/rw/via-bind");
    T(umount("/tmp/bind"));
    list("/tmp/bind");
    T(fd = open("/tmp/m/rw", O_RDONLY));
    T(umount("/tmp/m"));
    T(close(fd));
    T(umount2("/tmp/m", MNT_DETACH));
    list("/tmp/m");
    T(umount("/tmp/m"));
    T(umount2("/tmp", 0x100));
}

static void dev(void)
{
    char buf[4096];
    int fd, zero = 1;
    show("/dev/null");
    show("/dev/zero");
    show("/dev/full");
    show("/dev/random");
    show("/dev/urandom");
    T(fd = open("/dev/zero", O_RDWR));
    memset(buf, 7, sizeof buf);
    T(read(fd, buf, sizeof buf));
    for (size_t i = 0; i < sizeof buf; i++)
        zero &= buf[i] == 0;
    printf("zeros: %d\n", zero);
    T(write(fd, buf, 100));
    T(close(fd));
    T(fd = open("/dev/full", O_RDWR));
    T(write(fd, "x", 1));
    T(read(fd, buf, 10));
    T(close(fd));
    T(fd = open("/dev/null", O_RDWR));
    T(write(fd, "abc", 3));
    T(read(fd, buf, 10));
    T(lseek(fd, 0, SEEK_CUR));
    T(close(fd));
    T(fd = open("/dev/urandom", O_RDONLY));
    memset(buf, 0, 64);
    T(read(fd, buf, 64));
    zero = 1;
    for (int i = 0; i < 64; i++)
        zero &= buf[i] == 0;
    printf("random not all zero: %d\n", !zero);
    T(close(fd));
    T(fd = open("/dev/random", O_RDONLY));
    T(read(fd, buf, 16));
    T(close(fd));
    const char *links[] = {"/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr"};
    for (int i = 0; i < 4; i++) {
        memset(buf, 0, 64);
        T(readlink(links[i], buf, 64));
        printf("%s -> %s\n", links[i], buf);
    }
    T(open("/devnodes/null", O_WRONLY) >= 0);
    T(open("/devnodes/nodriver", O_RDONLY));
    show("/devnodes/fifo");
}

static void rofs(void)
{
    T(open("/etc/new", O_CREAT | O_WRONLY, 0644));
    T(open("/etc/hostname", O_WRONLY));
    T(open("/etc/hostname", O_RDONLY | O_TRUNC));
    T(open("/etc/hostname", O_CREAT | O_EXCL | O_WRONLY, 0644));
    T(open("/etc/hostname", O_CREAT | O_RDONLY, 0644) >= 0);
    T(mkdir("/bin", 0755));
    T(mkdir("/newdir", 0755));
    T(rmdir("/home"));
    T(rmdir("/nothere"));
    T(unlink("/etc/hostname"));
    T(unlink("/nothere"));
    T(rename("/etc/hostname", "/etc/h2"));
    T(rename("/etc/hostname", "/tmp/h2"));
    T(link("/etc/hostname", "/etc/h3"));
    T(symlink("x", "/etc/sl"));
    T(chmod("/etc/hostname", 0600));
    T(chown("/etc/hostname", 1, 1));
    T(truncate("/etc/hostname", 0));
    T(utimensat(AT_FDCWD, "/etc/hostname", NULL, 0));
    T(access("/etc/hostname", W_OK));
    T(access("/etc/hostname", R_OK));
    T(access("/devnodes/null", W_OK));
    T(open("/devnodes/null", O_WRONLY) >= 0);
    T(mknod("/etc/fifo", S_IFIFO | 0600, 0));
    T(rmdir("/"));
    T(unlink("/"));
    T(rename("/", "/x"));
    T(mkdir("/", 0755));
    T(umount("/etc"));
    struct statfs s;
    T(statfs("/", &s));
    printf("root ro: %d\n", (int)(s.f_flags & ST_RDONLY));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    for (int i = 1; i < argc; i++) {
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "files"))
            files();
        else if (!strcmp(argv[i], "dirs"))
            dirs();
        else if (!strcmp(argv[i], "attrs"))
            attrs();
        else if (!strcmp(argv[i], "mounts"))
            mounts();
        else if (!strcmp(argv[i], "dev"))
            dev();
        else if (!strcmp(argv[i], "rofs"))
            rofs();
    }
    return 0;
}
