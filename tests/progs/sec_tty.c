/* Hostile pty use: floods of input and output must stay bounded (a writer
 * with nobody reading waits or gets EAGAIN; a canonical line with no end
 * keeps at most 4095 bytes), bad pointers are EFAULT in every tty ioctl
 * that takes one, and ptys run out with ENOSPC at pty_max (4096), their
 * numbers free again once closed.  Prints only what Linux decides, the
 * same natively and in a guest. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

/* termios2's ioctls: glibc's headers do not define the struct (44 bytes) */
#define TCGETS2_ 0x802C542AUL
#define TCSETS2_ 0x402C542BUL
#define TCSETSW2_ 0x402C542CUL
#define TCSETSF2_ 0x402C542DUL
#define MiB (1 << 20)
#define BOUND (1 << 20)          /* what a pty may hold, at most, by this test */

static int pair(int *m, int *s)
{
    *m = posix_openpt(O_RDWR | O_NOCTTY);
    if (*m < 0 || grantpt(*m) || unlockpt(*m))
        return -1;
    *s = open(ptsname(*m), O_RDWR | O_NOCTTY);
    return *s < 0 ? -1 : 0;
}

static long fill(int fd, const char *chunk, size_t n)
{
    long total = 0;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        ssize_t w = write(fd, chunk, n);
        if (w < 0)
            return errno == EAGAIN ? total : -errno;
        total += w;
        if (total > 64 * MiB)
            return total;            /* unbounded */
    }
}

static long drain(int fd)
{
    struct termios t;
    char buf[65536];
    long total = 0;
    tcgetattr(fd, &t);
    cfmakeraw(&t);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 10;          /* what is there: natively it may come a moment late */
    tcsetattr(fd, TCSANOW, &t);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        total += r;
    return total;
}

static void floods(void)
{
    static char chunk[65536];
    int m, s;
    memset(chunk, 'a', sizeof chunk);
    if (pair(&m, &s)) { perror("pty"); exit(1); }
    struct termios t;
    tcgetattr(s, &t);
    cfmakeraw(&t);
    tcsetattr(s, TCSANOW, &t);
    long in = fill(m, chunk, sizeof chunk);
    printf("raw input flood: stops %d bounded %d\n", in > 0, in > 0 && in < BOUND);
    long out = fill(s, chunk, sizeof chunk);
    printf("output flood: stops %d bounded %d\n", out > 0, out > 0 && out < BOUND);
    long got = drain(s);
    printf("input drained whole %d\n", got == in);
    close(s);
    close(m);

    if (pair(&m, &s)) { perror("pty"); exit(1); }
    long total = 0;
    for (int i = 0; i < 64; i++)     /* 4 MiB typed with no line end: blocking writes end */
        total += write(m, chunk, sizeof chunk);
    int inq = -1;
    ioctl(s, FIONREAD, &inq);
    printf("canonical flood: written %ld, readable %d\n", total, inq);
    write(m, "\n", 1);
    char line[8192];
    fcntl(s, F_SETFL, O_NONBLOCK);
    ssize_t r = -1;
    for (int i = 0; i < 1000 && r < 0; i++) {     /* the line end may come a moment late */
        r = read(s, line, sizeof line);
        if (r < 0) usleep(1000);
    }
    printf("the line: %zd bytes, ends with a newline %d\n", r, r > 0 && line[r - 1] == '\n');
    close(s);
    close(m);

    if (pair(&m, &s)) { perror("pty"); exit(1); }
    for (int i = 0; i < (int)sizeof chunk; i += 2)
        chunk[i + 1] = '\n';
    long lines = fill(m, chunk, sizeof chunk);   /* echoed, and nobody reads either side */
    ioctl(m, FIONREAD, &inq);
    printf("echo flood: stops %d bounded %d, echo held bounded %d\n", lines > 0,
           lines > 0 && lines < BOUND, inq >= 0 && inq < BOUND);
    close(s);
    close(m);
}

static void bad_pointers(void)
{
    static const struct { const char *name; unsigned long req; int master_only; } reqs[] = {
        {"TCGETS", TCGETS, 0}, {"TCSETS", TCSETS, 0}, {"TCSETSW", TCSETSW, 0},
        {"TCSETSF", TCSETSF, 0}, {"TCGETS2", TCGETS2_, 0}, {"TCSETS2", TCSETS2_, 0},
        {"TCSETSW2", TCSETSW2_, 0}, {"TCSETSF2", TCSETSF2_, 0}, {"TIOCGWINSZ", TIOCGWINSZ, 0},
        {"TIOCSWINSZ", TIOCSWINSZ, 0}, {"FIONREAD", FIONREAD, 0}, {"TIOCOUTQ", TIOCOUTQ, 0},
        {"TIOCGETD", TIOCGETD, 0}, {"TIOCGPGRP", TIOCGPGRP, 0}, {"TIOCSPGRP", TIOCSPGRP, 0},
        {"TIOCGSID", TIOCGSID, 0}, {"TIOCGPTN", TIOCGPTN, 1}, {"TIOCSPTLCK", TIOCSPTLCK, 1},
        {"TIOCGPTLCK", TIOCGPTLCK, 1},
    };
    int m, s;
    if (pair(&m, &s)) { perror("pty"); exit(1); }
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        int rm = ioctl(m, reqs[i].req, (void *)8);
        int em = rm < 0 ? errno : 0;
        int rs = ioctl(s, reqs[i].req, (void *)8);
        int es = rs < 0 ? errno : 0;
        printf("%-10s master %-8s slave %s\n", reqs[i].name, em ? strerrorname_np(em) : "ok",
               es ? strerrorname_np(es) : "ok");
    }
    struct termios t;
    printf("still a terminal: %d %d\n", tcgetattr(m, &t) == 0, tcgetattr(s, &t) == 0);
    close(s);
    close(m);
}

static void exhaust(void)
{
    static int fds[5000];
    struct rlimit rl = {8192, 8192};
    if (setrlimit(RLIMIT_NOFILE, &rl)) { perror("setrlimit"); exit(1); }
    int n = 0, err = 0;
    while (n < 5000) {
        int fd = posix_openpt(O_RDWR | O_NOCTTY);
        if (fd < 0) { err = errno; break; }
        fds[n++] = fd;
    }
    printf("ptys opened: %d, then %s\n", n, strerrorname_np(err));
    for (int i = 0; i < n; i++)
        close(fds[i]);
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    unsigned int ptn = 99;
    ioctl(fd, TIOCGPTN, &ptn);
    printf("after closing them: opens %d, number %u\n", fd >= 0, ptn);
    close(fd);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    floods();
    bad_pointers();
    exhaust();
    puts("-- exit 0");
    return 0;
}
