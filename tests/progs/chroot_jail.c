/* chroot(2) as Linux has it: chroot_jail BASE makes BASE/jail (files, absolute
   symlinks, a copy of this program, proc and a tmpfs mounted inside),
   chroots into it and shows what absolute paths, "..", getcwd, /proc's
   links and mount tables, AF_UNIX names, fork and exec see there, the
   fchdir escape Linux allows, and the errors.  tests/guest/fs/test_chroot.py
   runs it natively (in a chroot of the tree, in a private mount namespace)
   and in a guest and wants the same output, the tree's host path aside.
   Run as "chroot_jail inexec" or "chroot_jail inscript" it is the program exec'd
   inside the jail. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static const char *base;

static const char *at(const char *name) {
    static char paths[4][512];
    static int i;
    char *p = paths[i++ & 3];
    snprintf(p, 512, "%s/%s", base, name);
    return p;
}

static void put(const char *path, const char *text, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    write(fd, text, strlen(text));
    close(fd);
}

static void link_to(const char *target, const char *path) {
    unlink(path);
    symlink(target, path);
}

static void copy(const char *from, const char *to) {
    static char buf[1 << 16];
    int in = open(from, O_RDONLY), out;
    unlink(to);
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        write(out, buf, n);
    close(in);
    close(out);
}

/* What the getcwd call says, or its error (the call itself: glibc's
   getcwd turns "(unreachable)..." into ENOENT). */
static void cwd(const char *label) {
    char buf[4096];
    if (syscall(SYS_getcwd, buf, sizeof buf) > 0)
        printf("%s: getcwd %s\n", label, buf);
    else
        printf("%s: getcwd -1 %s\n", label, strerrorname_np(errno));
}

static void show_link(const char *label, const char *path) {
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) {
        printf("readlink %s -1 %s\n", label, strerrorname_np(errno));
        return;
    }
    buf[n] = 0;
    printf("readlink %s %s\n", label, buf);
}

static void link_of(const char *path) {
    show_link(path, path);
}

/* The first line of the file at (dirfd, path), or its error. */
static void contents(int dirfd, const char *path) {
    char buf[256] = "";
    int fd = openat(dirfd, path, O_RDONLY);
    if (fd < 0) {
        printf("open %s -1 %s\n", path, strerrorname_np(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    printf("open %s: %s\n", path, buf);
    close(fd);
}

/* The mount table of /proc/self, fields chosen so that Linux's and the
   guest's filesystems' option strings do not matter. */
static void mounts(void) {
    char line[1024], a[256], b[256], c[256], d[256], e[256];
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f) {
        printf("mounts: %s\n", strerrorname_np(errno));
        return;
    }
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%255s %255s %255s", a, b, c) == 3)
            printf("mounts: %s %s %s\n", a, b, c);
    fclose(f);
    f = fopen("/proc/self/mountinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%*s %*s %*s %255s %255s %255s %255s", d, e, a, b) == 4)
            printf("mountinfo: root %s point %s\n", d, e);
    if (f)
        fclose(f);
}

static int wait_for(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void make_jail(void) {
    mkdir(base, 0755);
    put(at("outside_file"), "outside\n", 0644);
    mkdir(at("jail"), 0755);
    put(at("jail/file"), "inside\n", 0644);
    mkdir(at("jail/dir"), 0755);
    mkdir(at("jail/dir/sub"), 0755);
    mkdir(at("jail/bin"), 0755);
    mkdir(at("jail/proc"), 0755);
    mkdir(at("jail/mnt"), 0755);
    mkdir(at("jail/private"), 0700);
    mkdir(at("jail/private/x"), 0755);
    link_to("/file", at("jail/abs"));
    link_to("/dir", at("jail/dirlink"));
    link_to("loop", at("jail/loop"));
    copy("/bin/chroot_jail", at("jail/bin/chroot_jail"));
    put(at("jail/bin/script"), "#!/bin/chroot_jail inscript\n", 0755);
    SHOW("mount proc in the jail", mount("proc", at("jail/proc"), "proc", 0, NULL));
    SHOW("mount tmpfs in the jail", mount("tmpfs", at("jail/mnt"), "tmpfs", 0, NULL));
}

/* Another process's root, seen from one that is not in it; a mount
   that is a root is busy. */
static void root_of_another(void) {
    int ready[2], done[2];
    char c;
    pipe(ready);
    pipe(done);
    pid_t pid = fork();
    if (pid == 0) {
        chroot(at("jail/mnt"));
        write(ready[1], "r", 1);
        read(done[0], &c, 1);
        _exit(0);
    }
    read(ready[0], &c, 1);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root", pid);
    show_link("/proc/CHILD/root", path);
    snprintf(path, sizeof path, "/proc/%d/cwd", pid);
    show_link("/proc/CHILD/cwd", path);
    SHOW("umount the child's root", umount(at("jail/mnt")));
    write(done[1], "d", 1);
    wait_for(pid);
}

static void *chroot_thread(void *path) {
    SHOW("thread: chroot jail", chroot(path));
    return NULL;
}

/* Threads share their root (CLONE_FS): one chroots, the other is in. */
static void thread_shares_root(void) {
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t th;
        pthread_create(&th, NULL, chroot_thread, (void *)at("jail"));
        pthread_join(th, NULL);
        contents(AT_FDCWD, "/file");
        _exit(0);
    }
    wait_for(pid);
}

static void unix_names(void) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, "/sock");
    unlink("/sock");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("bind /sock", bind(s, (struct sockaddr *)&sa, sizeof sa));
    listen(s, 1);
    struct stat st;
    SHOW("stat /sock is a socket", stat("/sock", &st) == 0 && S_ISSOCK(st.st_mode));
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        SHOW("child connects to /sock", connect(c, (struct sockaddr *)&sa, sizeof sa));
        write(c, "hi", 2);
        _exit(0);
    }
    int a = accept(s, NULL, NULL);
    char buf[3] = "";
    read(a, buf, 2);
    printf("accepted: %s\n", buf);
    wait_for(pid);
    close(a);
    close(s);
    unlink("/sock");
}

static void errors(void) {
    SHOW("chroot a file", chroot("/file"));
    SHOW("chroot nothing", chroot("/nothing"));
    SHOW("chroot a loop", chroot("/loop"));
    SHOW("chroot through a file", chroot("/file/x"));
    SHOW("chroot a bad pointer", syscall(SYS_chroot, (char *)8));
    SHOW("chroot empty", chroot(""));
    pid_t pid = fork();
    if (pid == 0) {
        SHOW("setresuid 1000", setresuid(1000, 1000, 1000));
        SHOW("user: chroot /dir", chroot("/dir"));
        SHOW("user: chroot nothing", chroot("/nothing"));
        SHOW("user: chroot a file", chroot("/file"));
        SHOW("user: chroot /private/x", chroot("/private/x"));
        SHOW("user: chroot /private", chroot("/private"));
        cwd("user");
        _exit(0);
    }
    wait_for(pid);
}

/* The classic way out, which Linux allows: a directory held from before
   the chroot, fchdir to it, chroot(".").  In a child, so the rest stays in. */
static void fchdir_escape(int outside) {
    pid_t pid = fork();
    if (pid == 0) {
        SHOW("fchdir outside", fchdir(outside));
        cwd("escaped cwd");
        SHOW("chdir .. outside", chdir(".."));
        cwd("up one");
        SHOW("chroot . outside", chroot("."));
        cwd("new root");
        char rel[512];
        snprintf(rel, sizeof rel, "/%s/outside_file", strrchr(base, '/') + 1);
        contents(AT_FDCWD, rel);
        _exit(0);
    }
    wait_for(pid);
}

static void in_jail(const char *how) {
    cwd(how);
    contents(AT_FDCWD, "/file");
    contents(AT_FDCWD, "../../file");
    link_of("/proc/self/root");
    link_of("/proc/self/cwd");
    link_of("/proc/self/exe");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "inexec")) {
        in_jail("exec'd");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "inscript")) {
        printf("interpreter of %s\n", argv[2]);
        in_jail("script");
        return 0;
    }
    if (argc < 2)
        return 2;
    base = argv[1];
    if (access("/proc/self", F_OK))
        mount("proc", "/proc", "proc", 0, NULL);
    make_jail();
    root_of_another();
    contents(AT_FDCWD, "/file");        /* the child's chroot was its own */
    thread_shares_root();

    int outside = open(base, O_RDONLY | O_DIRECTORY);
    SHOW("chdir base", chdir(base));
    cwd("before");
    SHOW("chroot jail", chroot("jail"));
    cwd("after chroot");
    link_of("/proc/self/cwd");
    link_of("/proc/self/root");
    contents(AT_FDCWD, "outside_file");
    contents(AT_FDCWD, "jail/file");
    SHOW("chdir /", chdir("/"));
    cwd("after chdir /");
    link_of("/proc/self/cwd");
    link_of("/proc/self/root");
    contents(AT_FDCWD, "/file");
    contents(AT_FDCWD, "/../../file");
    struct stat root, up;
    stat("/", &root);
    stat("/..", &up);
    printf("/.. is /: %d\n", root.st_ino == up.st_ino && root.st_dev == up.st_dev);
    SHOW("chdir ..", chdir(".."));
    cwd("after chdir ..");
    contents(AT_FDCWD, "/abs");
    contents(AT_FDCWD, "/dirlink/../file");
    contents(AT_FDCWD, "dirlink/sub/../../abs");
    int dir = open("/dir/sub", O_RDONLY | O_DIRECTORY);
    contents(dir, "../../file");
    contents(dir, "/file");
    contents(dir, "../../../../abs");
    int jailed = open("/abs", O_RDONLY);
    char fd_link[64];
    snprintf(fd_link, sizeof fd_link, "/proc/self/fd/%d", jailed);
    show_link("a file in the jail", fd_link);
    snprintf(fd_link, sizeof fd_link, "/proc/self/fd/%d", outside);
    show_link("a directory outside", fd_link);
    mounts();
    unix_names();

    pid_t pid = fork();
    if (pid == 0) {
        in_jail("forked");
        _exit(0);
    }
    wait_for(pid);
    pid = fork();
    if (pid == 0) {
        execl("/bin/chroot_jail", "chroot_jail", "inexec", (char *)NULL);
        printf("exec -1 %s\n", strerrorname_np(errno));
        _exit(1);
    }
    printf("exec'd child: %d\n", wait_for(pid));
    pid = fork();
    if (pid == 0) {
        execl("/bin/script", "script", (char *)NULL);
        printf("exec script -1 %s\n", strerrorname_np(errno));
        _exit(1);
    }
    printf("script child: %d\n", wait_for(pid));

    fchdir_escape(outside);
    errors();
    umount("/mnt");
    umount("/proc");
    return 0;
}
