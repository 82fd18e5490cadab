/* Pseudo-terminals driven from their master, as a terminal emulator or
 * expect drives them: each scenario forks a child on a new pty (forkpty),
 * the parent types into the master and shows what it reads back, escaped.
 * The parent waits for what the child says before typing on, so the
 * transcript is the same on every run, natively and in a guest.  Nothing
 * host-specific (pts numbers, pids) is printed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int master;
static char acc[8192];
static size_t nacc;

static void show(const char *what, const char *s, size_t n)
{
    printf("%s: ", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '\n') printf("\\n");
        else if (c == '\r') printf("\\r");
        else if (c == '\b') printf("\\b");
        else if (c < 32 || c >= 127) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('\n');
    fflush(stdout);
}

/* Read the master (poll, then read) until what came holds until; show
 * what came up to its end, and keep the rest for the next expect. */
static void expect(const char *until)
{
    char *at;
    while (!(at = strstr(acc, until))) {
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) {
            show("TIMEOUT", acc, nacc);
            exit(1);
        }
        ssize_t n = read(master, acc + nacc, sizeof acc - 1 - nacc);
        if (n <= 0) {
            printf("master read: %zd %s\n", n, n ? strerror(errno) : "");
            show("had", acc, nacc);
            exit(1);
        }
        nacc += n;
        acc[nacc] = 0;
    }
    size_t upto = at - acc + strlen(until);
    show("read", acc, upto);
    memmove(acc, acc + upto, nacc - upto + 1);
    nacc -= upto;
}

static void type(const char *s)
{
    if (write(master, s, strlen(s)) != (ssize_t)strlen(s))
        perror("write master");
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, n) < 0)
        _exit(3);
}

static void lflags(int on, int off)
{
    struct termios t;
    tcgetattr(0, &t);
    t.c_lflag = (t.c_lflag | on) & ~off;
    tcsetattr(0, TCSANOW, &t);
}

static void escaped(const char *what, const char *s, ssize_t n)
{
    char out[512];
    size_t k = 0;
    for (ssize_t i = 0; i < n && k < sizeof out - 8; i++) {
        unsigned char c = s[i];
        if (c < 32 || c >= 127) k += sprintf(out + k, "<%02x>", c);
        else out[k++] = c;
    }
    out[k] = 0;
    say("%s[%s] %zd\n", what, out, n);
}

/* --- the children -------------------------------------------------------- */

static void child_canon(void)
{
    char buf[256];
    say("ready\n");
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0) { say("eof\n"); continue; }
        escaped("got", buf, n);
        if (n >= 4 && !memcmp(buf, "quit", 4)) break;
    }
    lflags(0, ECHO);
    say("noecho\n");
    ssize_t n = read(0, buf, sizeof buf);
    escaped("got", buf, n);
    int inq = -1;
    lflags(ECHO, 0);
    say("inq\n");
    while (ioctl(0, FIONREAD, &inq) == 0 && inq < 13)
        usleep(1000);              /* until the two lines are in */
    say("fionread %d\n", inq);
    n = read(0, buf, 3);
    escaped("part", buf, n);
    n = read(0, buf, sizeof buf);
    escaped("rest", buf, n);
    n = read(0, buf, sizeof buf);
    escaped("next", buf, n);
    _exit(0);
}

static void child_raw(void)
{
    struct termios t;
    char buf[64];
    tcgetattr(0, &t);
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSAFLUSH, &t);
    say("raw\r\n");
    for (int i = 0; i < 4; i++) {
        ssize_t n = read(0, buf, sizeof buf);
        escaped("byte", buf, n);
    }
    t.c_cc[VMIN] = 3;                 /* at least 3 */
    tcsetattr(0, TCSANOW, &t);
    say("min3\r\n");
    ssize_t n = read(0, buf, 3);
    escaped("min3", buf, n);
    t.c_cc[VMIN] = 0;                 /* a poll */
    tcsetattr(0, TCSANOW, &t);
    n = read(0, buf, sizeof buf);
    escaped("poll", buf, n);
    t.c_cc[VTIME] = 2;                /* a timeout: nothing comes */
    tcsetattr(0, TCSANOW, &t);
    n = read(0, buf, sizeof buf);
    escaped("timeout", buf, n);
    t.c_cc[VMIN] = 5;                 /* an inter-byte timer */
    tcsetattr(0, TCSANOW, &t);
    say("min5time2\r\n");
    n = read(0, buf, sizeof buf);
    escaped("intertime", buf, n);
    t.c_oflag |= OPOST | ONLCR;      /* output processing */
    tcsetattr(0, TCSANOW, &t);
    say("a\nb\n");
    t.c_oflag &= ~ONLCR;
    t.c_oflag |= OCRNL;
    tcsetattr(0, TCSANOW, &t);
    say("c\rd\n");
    t.c_oflag &= ~OCRNL;
    t.c_oflag |= ONOCR;
    tcsetattr(0, TCSANOW, &t);
    say("\r\rz\n");
    t.c_oflag = 0;
    tcsetattr(0, TCSANOW, &t);
    say("end\n");
    _exit(0);
}

static volatile sig_atomic_t got[65];
static void note(int sig) { got[sig]++; }

static void catch(int sig, int flags)
{
    struct sigaction sa = {0};
    sa.sa_handler = note;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

/* Wait for input with the signals let in (ppoll): a signal that comes
 * before the wait is taken in it, so none is missed. */
static int wait_input(sigset_t *open)
{
    struct pollfd p = {0, POLLIN, 0};
    int r = ppoll(&p, 1, NULL, open);
    return r < 0 ? -errno : r;
}

static void child_signals(void)
{
    char buf[64];
    sigset_t block, open;
    catch(SIGINT, 0);
    catch(SIGQUIT, 0);
    catch(SIGWINCH, 0);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGQUIT);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, &open);
    lflags(0, ECHO);
    say("ready\n");
    int r = wait_input(&open);
    say("wait %d int=%d\n", r, got[SIGINT]);
    int inq = -1;
    ioctl(0, FIONREAD, &inq);
    say("flushed: fionread %d\n", inq);
    r = wait_input(&open);
    say("wait %d quit=%d\n", r, got[SIGQUIT]);
    r = wait_input(&open);
    struct winsize ws;
    ioctl(0, TIOCGWINSZ, &ws);
    say("wait %d winch=%d rows=%d cols=%d\n", r, got[SIGWINCH], ws.ws_row, ws.ws_col);
    lflags(NOFLSH, 0);
    say("noflsh\n");
    r = wait_input(&open);
    say("wait %d int=%d\n", r, got[SIGINT]);
    ssize_t n = read(0, buf, sizeof buf);
    escaped("kept", buf, n);
    _exit(0);
}

static void status(const char *who, pid_t p, int opts)
{
    int st;
    if (waitpid(p, &st, opts) != p) { say("%s: waitpid %s\n", who, strerror(errno)); return; }
    if (WIFSTOPPED(st)) say("%s stopped by %d\n", who, WSTOPSIG(st));
    else if (WIFSIGNALED(st)) say("%s killed by %d\n", who, WTERMSIG(st));
    else say("%s exited %d\n", who, WEXITSTATUS(st));
}

static void child_jobs(void)
{
    char c;
    int go[2];
    signal(SIGTTOU, SIG_IGN);        /* as a shell: it moves the foreground */
    lflags(0, ECHO);
    say("leader: sid==pid %d tty pgrp==pgrp %d sid via tty %d\n", getsid(0) == getpid(),
        tcgetpgrp(0) == getpgrp(), tcgetsid(0) == getsid(0));
    int fd = open("/dev/tty", O_RDWR);
    say("/dev/tty %s\n", fd >= 0 ? "opens" : strerror(errno));
    close(fd);
    struct stat st;                  /* /proc/self/stat's tty_nr is the terminal's */
    fstat(0, &st);
    FILE *f = fopen("/proc/self/stat", "r");
    int tty_nr = -1, tpgid = 0;
    if (f && fscanf(f, "%*d %*s %*c %*d %*d %*d %d %d", &tty_nr, &tpgid) == 2)
        say("stat: tty_nr is the terminal %d, tpgid is the group %d\n",
            (dev_t)tty_nr == st.st_rdev, tpgid == getpgrp());
    if (f) fclose(f);
    pipe(go);
    pid_t g = fork();
    if (g == 0) {
        signal(SIGTTOU, SIG_DFL);
        setpgid(0, 0);
        read(go[0], &c, 1);
        say("G in front\n");
        ssize_t n = read(0, &c, 1);         /* stopped by ^Z, then in the background */
        say("G read %zd\n", n);
        _exit(0);
    }
    setpgid(g, g);
    tcsetpgrp(0, g);
    write(go[1], "x", 1);
    status("G", g, WUNTRACED);
    tcsetpgrp(0, getpgrp());
    kill(g, SIGCONT);
    status("G", g, WUNTRACED);
    kill(g, SIGKILL);
    status("G", g, 0);
    lflags(TOSTOP, 0);
    pid_t h = fork();
    if (h == 0) {
        signal(SIGTTOU, SIG_DFL);
        setpgid(0, 0);
        say("H writes\n");            /* TOSTOP: a background write stops */
        _exit(0);
    }
    setpgid(h, h);
    status("H", h, WUNTRACED);
    kill(h, SIGKILL);
    status("H", h, 0);
    lflags(0, TOSTOP);
    pid_t k = fork();
    if (k == 0) {
        setpgid(0, 0);
        signal(SIGTTIN, SIG_IGN);
        ssize_t n = read(0, &c, 1);
        say("K read %zd %s\n", n, n < 0 ? strerror(errno) : "");
        int r = tcsetpgrp(0, getpgrp());
        say("K tcsetpgrp %d %s\n", r, r < 0 ? strerror(errno) : "");
        _exit(0);
    }
    setpgid(k, k);
    status("K", k, 0);
    say("tcsetpgrp to another session's group: %s\n",
        tcsetpgrp(0, getppid()) < 0 ? strerror(errno) : "allowed");
    say("TIOCSCTTY again: %d\n", ioctl(0, TIOCSCTTY, 0));
    _exit(0);
}

static int report;

static void child_hangup(void)
{
    sigset_t block, old;
    catch(SIGHUP, SA_RESTART);
    catch(SIGCONT, SA_RESTART);
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    say("ready\n");
    while (!got[SIGHUP])
        sigsuspend(&old);
    char buf[16];
    dprintf(report, "child: hup=%d cont=%d\n", got[SIGHUP], got[SIGCONT]);
    ssize_t n = read(0, buf, sizeof buf);
    dprintf(report, "child: read after hang-up %zd %s\n", n, n < 0 ? strerror(errno) : "");
    n = write(1, "x", 1);
    dprintf(report, "child: write after hang-up %zd %s\n", n, n < 0 ? strerror(errno) : "");
    int fd = open("/dev/tty", O_RDWR);
    dprintf(report, "child: /dev/tty %s\n", fd >= 0 ? "opens" : strerror(errno));
    _exit(0);
}

/* --- the parent --------------------------------------------------------- */

static pid_t start(void (*child)(void))
{
    struct winsize ws = {24, 80, 0, 0};
    pid_t p = forkpty(&master, NULL, NULL, &ws);
    if (p < 0) { perror("forkpty"); exit(1); }
    if (p == 0) child();
    return p;
}

static void finish(pid_t p)
{
    int st;
    char buf[256];
    waitpid(p, &st, 0);
    ssize_t n;
    while ((n = read(master, buf, sizeof buf)) > 0 && nacc + n < sizeof acc) {
        memcpy(acc + nacc, buf, n);
        nacc += n;
    }
    show("last", acc, nacc);
    nacc = 0;
    acc[0] = 0;
    printf("child done (status %d), master read then %zd %s\n", WEXITSTATUS(st), n,
           n < 0 ? strerror(errno) : "");
    close(master);
}

static void canon(void)
{
    puts("== canonical");
    pid_t p = start(child_canon);
    expect("ready\r\n");
    type("abc\x7f" "d\n");
    expect("] 4\r\n");
    type("hello wo\x17there\n");
    expect("] 12\r\n");
    type("junk\x15kill ok\n");
    expect("] 8\r\n");
    type("tab\t\x7fx\n");
    expect("] 5\r\n");
    type("\xc3\xa9t\xc3\xa9\x7f\x7f\n");
    expect("] 4\r\n");
    struct termios t;                /* the master's termios are the slave's */
    tcgetattr(master, &t);
    t.c_iflag |= IUTF8;
    tcsetattr(master, TCSANOW, &t);
    type("\xc3\xa9t\xc3\xa9\x7f\x7f\n");
    expect("] 3\r\n");
    type("x\x04");
    expect("[x] 1\r\n");
    type("\x04");
    expect("eof\r\n");
    type("lit\x16\x7f\n");
    expect("] 5\r\n");
    type("\x01\x1b\n");
    expect("] 3\r\n");
    type("redo\x12\n");
    expect("] 5\r\n");
    type("quit\r");
    expect("noecho\r\n");
    type("secret\n");
    expect("] 7\r\n");
    expect("inq\r\n");
    type("first\nsecond\n");
    finish(p);
}

static void raw(void)
{
    puts("== raw");
    pid_t p = start(child_raw);
    expect("raw\r\n");
    type("a");
    expect("] 1\n");
    type("\x03");
    expect("] 1\n");
    type("\r");
    expect("] 1\n");
    type("\x7f");
    expect("] 1\n");
    expect("min3\r\n");
    type("ab");
    type("cd");
    expect("min3[");
    expect("timeout[");
    expect("min5time2\r\n");
    type("xy");
    finish(p);
}

static void signals(void)
{
    puts("== signals");
    pid_t p = start(child_signals);
    expect("ready\r\n");
    type("abc\x03");
    expect("int=1\r\n");
    expect("fionread 0\r\n");
    type("\x1c");
    expect("quit=1\r\n");
    struct winsize ws = {30, 100, 0, 0};
    ioctl(master, TIOCSWINSZ, &ws);
    expect("cols=100\r\n");
    expect("noflsh\r\n");
    type("kept\x03");
    expect("int=2\r\n");
    type("\n");
    finish(p);
}

static void jobs(void)
{
    puts("== job control");
    pid_t p = start(child_jobs);
    expect("G in front\r\n");
    type("\x1a");
    expect("G stopped by 20\r\nG stopped by 21\r\nG killed by 9\r\n");
    expect("TIOCSCTTY again: 0\r\n");
    finish(p);
}

static void hangup(void)
{
    int pfd[2];
    char buf[512];
    puts("== hang-up");
    pipe(pfd);
    report = pfd[1];
    pid_t p = start(child_hangup);
    close(pfd[1]);
    expect("ready\r\n");
    close(master);
    ssize_t n;
    while ((n = read(pfd[0], buf, sizeof buf)) > 0)
        fwrite(buf, 1, n, stdout);
    int st;
    waitpid(p, &st, 0);
    printf("child exited %d\n", WEXITSTATUS(st));
}

static void unix98(void)
{
    puts("== ptmx");
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) { perror("posix_openpt"); return; }
    unsigned int n1;
    ioctl(m, TIOCGPTN, &n1);
    char *name = ptsname(m);
    char want[32];
    snprintf(want, sizeof want, "/dev/pts/%u", n1);
    printf("ptsname matches TIOCGPTN: %d\n", name && !strcmp(name, want));
    int s = open(want, O_RDWR | O_NOCTTY);
    printf("slave before unlockpt: %s\n", s < 0 ? strerror(errno) : "opens");
    printf("grantpt %d unlockpt %d\n", grantpt(m), unlockpt(m));
    struct stat st;
    stat(want, &st);
    printf("slave node: chr %d major %d\n", S_ISCHR(st.st_mode), major(st.st_rdev));
    s = open(want, O_RDWR | O_NOCTTY);
    printf("slave %s, isatty %d, master isatty %d\n", s < 0 ? strerror(errno) : "opens",
           isatty(s), isatty(m));
    struct stat a, b;
    fstat(s, &a);
    printf("fstat of it is the node: %d\n", a.st_ino == st.st_ino && a.st_dev == st.st_dev);
    int peer = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    fstat(peer, &b);
    printf("TIOCGPTPEER gives the node: %d\n", peer >= 0 && b.st_rdev == st.st_rdev);
    printf("ttyname is ptsname: %d\n", ttyname(s) && !strcmp(ttyname(s), want));
    struct termios t;
    tcgetattr(s, &t);
    printf("slave termios: iflag %o oflag %o cflag %o lflag %o\n", t.c_iflag, t.c_oflag,
           t.c_cflag, t.c_lflag);
    int flags = fcntl(m, F_GETFL);
    fcntl(m, F_SETFL, flags | O_NONBLOCK);
    char c;
    ssize_t r = read(m, &c, 1);
    printf("empty master, O_NONBLOCK: %zd %s\n", r, r < 0 ? strerror(errno) : "");
    struct pollfd p[2] = {{m, POLLIN | POLLOUT, 0}, {s, POLLIN | POLLOUT, 0}};
    poll(p, 2, 0);
    printf("poll: master %x slave %x\n", p[0].revents, p[1].revents);
    int ep = epoll_create1(0);
    struct epoll_event ev = {EPOLLIN, {.u32 = 1}}, got_ev[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, m, &ev);
    ev.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    printf("epoll before: %d\n", epoll_wait(ep, got_ev, 2, 0));
    write(s, "out\n", 4);
    int ne = epoll_wait(ep, got_ev, 2, 5000);
    printf("epoll after the slave's write: %d, the master %d\n", ne,
           ne == 1 && got_ev[0].data.u32 == 1);
    close(ep);
    write(m, "in\n", 3);
    struct pollfd in = {m, POLLIN, 0};   /* each side's data may come a moment later */
    poll(&in, 1, 5000);
    in.fd = s;
    poll(&in, 1, 5000);
    poll(p, 2, 0);
    printf("poll: master %x slave %x\n", p[0].revents, p[1].revents);
    close(s);
    close(peer);
    char buf[32];
    ssize_t total = 0;
    for (;;) {       /* Linux may hand the slave's last bytes over in pieces (under load: 5, 4) */
        struct pollfd pm = {m, POLLIN, 0};
        poll(&pm, 1, 5000);
        r = read(m, buf, sizeof buf);
        if (r <= 0)
            break;
        total += r;
    }
    printf("master read %zd\n", total);
    printf("then %zd %s\n", r, r < 0 ? strerror(errno) : "");
    poll(p, 1, 0);
    printf("poll: master %x\n", p[0].revents);
    int fd = open("/dev/tty", O_RDWR);
    printf("/dev/tty with no controlling terminal: %s\n", fd < 0 ? strerror(errno) : "opens");
    pid_t leader = fork();
    if (leader == 0) {               /* a new session's leader opens it: its terminal now */
        setsid();
        signal(SIGHUP, SIG_IGN);     /* TIOCNOTTY hangs its foreground group up: itself */
        int t1 = open(want, O_RDWR);
        printf("leader's open: its terminal %d\n", tcgetsid(t1) == getsid(0));
        int t2 = open("/dev/tty", O_RDWR);
        printf("/dev/tty then: %s\n", t2 < 0 ? strerror(errno) : "opens");
        printf("TIOCNOTTY %d, then /dev/tty: ", ioctl(t1, TIOCNOTTY));
        t2 = open("/dev/tty", O_RDWR);
        printf("%s\n", t2 < 0 ? strerror(errno) : "opens");
        _exit(0);
    }
    waitpid(leader, NULL, 0);
    close(m);
}

static void stty(void)
{
    puts("== busybox stty");
    pid_t p = forkpty(&master, NULL, NULL, NULL);
    if (p == 0) {
        struct winsize ws = {33, 111, 0, 0};
        ioctl(0, TIOCSWINSZ, &ws);
        execl("/bin/sh", "sh", "-c", "stty size; stty -g; stty raw -echo; stty -g; stty sane;"
              " stty -g; stty cols 70; stty size", (char *)NULL);
        _exit(127);
    }
    finish(p);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* no controlling terminal of our own, whatever ran us */
    if (fork() > 0) { int st; wait(&st); return WEXITSTATUS(st); }
    setsid();
    const char *which = argc > 1 ? argv[1] : "all";
    int all = !strcmp(which, "all");
    if (all || !strcmp(which, "canon")) canon();
    if (all || !strcmp(which, "raw")) raw();
    if (all || !strcmp(which, "signals")) signals();
    if (all || !strcmp(which, "jobs")) jobs();
    if (all || !strcmp(which, "hangup")) hangup();
    if (all || !strcmp(which, "ptmx")) unix98();
    if (all || !strcmp(which, "stty")) stty();
    return 0;
}
