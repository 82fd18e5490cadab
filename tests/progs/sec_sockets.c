/* A hostile guest against AF_UNIX sockets: bad pointers in msghdrs, iovecs
 * and control messages, lying lengths, fd-passing loops, peers that never
 * read, forged credentials, too many files in flight.  Prints what each
 * came to, the same natively and in a guest. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BAD ((void *)8)

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s = -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s = %ld\n", what, r);
    fflush(stdout);
}

static void on_alarm(int sig) { (void)sig; }

static int send_cmsg(int fd, int level, int type, const void *data, size_t len)
{
    char ctl[CMSG_SPACE(512)] = {0};
    struct iovec iov = {"x", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = CMSG_SPACE(len)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    return sendmsg(fd, &m, MSG_DONTWAIT);
}

static void pointers(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    show("sendmsg bad msghdr", sendmsg(sv[0], BAD, 0));
    show("recvmsg bad msghdr", recvmsg(sv[0], BAD, 0));
    struct msghdr m = {.msg_iov = BAD, .msg_iovlen = 1};
    show("sendmsg bad iovec array", sendmsg(sv[0], &m, 0));
    struct iovec iov = {BAD, 16};
    m.msg_iov = &iov;
    show("sendmsg bad iov_base", sendmsg(sv[0], &m, 0));
    m.msg_iovlen = 5000;
    show("sendmsg 5000 iovecs", sendmsg(sv[0], &m, 0));
    write(sv[0], "kept", 4);
    m.msg_iovlen = 1;
    show("recvmsg into a bad buffer", recvmsg(sv[1], &m, 0));
    char buf[16] = {0};
    show("the bytes are still there", read(sv[1], buf, sizeof buf));
    printf("  '%s'\n", buf);
    iov = (struct iovec){"x", 1};
    m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = BAD, .msg_controllen = 64};
    show("sendmsg bad msg_control", sendmsg(sv[0], &m, 0));
    m.msg_controllen = 1UL << 40;
    show("sendmsg huge msg_controllen", sendmsg(sv[0], &m, 0));
    char ctl[64] = {0};
    struct cmsghdr *c = (struct cmsghdr *)ctl;
    m.msg_control = ctl;
    m.msg_controllen = 32;
    c->cmsg_len = 1000;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    show("cmsg_len past the buffer", sendmsg(sv[0], &m, 0));
    c->cmsg_len = 8;
    show("cmsg_len below a header", sendmsg(sv[0], &m, 0));
    c->cmsg_len = CMSG_LEN(4);
    c->cmsg_type = 77;
    show("unknown cmsg type", sendmsg(sv[0], &m, 0));
    c->cmsg_level = 99;
    show("other level (ignored)", sendmsg(sv[0], &m, 0));
    read(sv[1], buf, sizeof buf);
    write(sv[0], "x", 1);
    struct iovec riov = {buf, 1};
    struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = BAD,
                        .msg_controllen = 64};
    show("recvmsg bad msg_control (nothing to put there)", recvmsg(sv[1], &rm, 0));
    show("send 1 TiB from a small buffer", send(sv[0], buf, 1UL << 40, MSG_DONTWAIT));
    struct sockaddr_un a = {AF_UNIX, "x"};
    show("bind addrlen 1<<31", bind(sv[0], (struct sockaddr *)&a, 1U << 31));
    show("bind bad address", bind(sv[0], BAD, sizeof a));
    show("getsockname bad addrlen", getsockname(sv[0], (struct sockaddr *)&a, BAD));
    socklen_t len = -1;
    show("getsockname negative addrlen", getsockname(sv[0], (struct sockaddr *)&a, &len));
    show("getsockopt bad optlen", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, buf, BAD));
    show("socketpair bad vector", socketpair(AF_UNIX, SOCK_STREAM, 0, BAD));
    show("accept4 bad flags", accept4(sv[0], NULL, NULL, 0x1234));
    int d[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, d);
    show("recvmmsg bad vector", recvmmsg(d[0], BAD, 4, MSG_DONTWAIT, NULL));
    show("sendmmsg bad vector", sendmmsg(d[0], BAD, 4, 0));
    close(d[0]);
    close(d[1]);
    close(sv[0]);
    close(sv[1]);
}

static void loops(void)
{
    /* sockets that hold each other in flight, then closed: Linux collects them */
    int made = 0;
    for (int i = 0; i < 2000; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
            break;
        if (send_cmsg(sv[0], SOL_SOCKET, SCM_RIGHTS, sv, sizeof sv) < 0
                || send_cmsg(sv[1], SOL_SOCKET, SCM_RIGHTS, sv, sizeof sv) < 0) {
            printf("loop %d: %s\n", i, strerrorname_np(errno));
            close(sv[0]);
            close(sv[1]);
            break;
        }
        close(sv[0]);
        close(sv[1]);
        made++;
    }
    printf("loops made %d\n", made);
    /* a socket sent over itself */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    show("a socket sent into its own queue", send_cmsg(sv[1], SOL_SOCKET, SCM_RIGHTS, &sv[0], 4));
    close(sv[0]);
    close(sv[1]);
}

static void flood(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    static char big[65536];
    long total = 0;
    ssize_t r;
    while ((r = write(sv[0], big, sizeof big)) > 0)
        total += r;
    printf("stream flood ends with %s, bounded %d\n", strerrorname_np(errno), total < (8 << 20));
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl & ~O_NONBLOCK);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    show("a blocking write into the full stream, cut by a signal", write(sv[0], big, sizeof big));
    close(sv[0]);
    close(sv[1]);

    /* many senders to one datagram socket that never reads */
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {AF_UNIX};
    strcpy(a.sun_path + 1, "skas-flood");
    socklen_t len = 2 + 1 + strlen("skas-flood");
    bind(s, (struct sockaddr *)&a, len);
    int senders = 0, refused = 0;
    for (int i = 0; i < 50; i++) {
        int c = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        for (int k = 0; k < 100; k++)
            if (sendto(c, big, 1000, 0, (struct sockaddr *)&a, len) < 0) {
                refused += errno == EAGAIN;
                break;
            }
        senders++;
        close(c);
    }
    printf("dgram flood: %d senders, %d told EAGAIN\n", senders, refused);
    close(s);
}

static void as_user(void (*body)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(1000) < 0 || setuid(1000) < 0)
            _exit(3);
        body();
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("(user child exit %d)\n", WEXITSTATUS(st));
}

static void forge(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    struct ucred c = {getppid(), getuid(), getgid()};
    show("SCM_CREDENTIALS with another pid", send_cmsg(sv[0], SOL_SOCKET, SCM_CREDENTIALS, &c, sizeof c));
    c = (struct ucred){getpid(), 0, getgid()};
    show("SCM_CREDENTIALS with uid 0", send_cmsg(sv[0], SOL_SOCKET, SCM_CREDENTIALS, &c, sizeof c));
    c = (struct ucred){getpid(), getuid(), 0};
    show("SCM_CREDENTIALS with gid 0", send_cmsg(sv[0], SOL_SOCKET, SCM_CREDENTIALS, &c, sizeof c));
    c = (struct ucred){getpid(), getuid(), getgid()};
    show("SCM_CREDENTIALS, short", send_cmsg(sv[0], SOL_SOCKET, SCM_CREDENTIALS, &c, 8));
    show("SCM_CREDENTIALS, my own", send_cmsg(sv[0], SOL_SOCKET, SCM_CREDENTIALS, &c, sizeof c));
    /* files in flight past RLIMIT_NOFILE */
    struct rlimit rl = {16, 16};
    setrlimit(RLIMIT_NOFILE, &rl);
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = 0;
    int sent = 0;
    while (send_cmsg(sv[0], SOL_SOCKET, SCM_RIGHTS, fds, sizeof fds) >= 0 && sent < 100)
        sent++;
    printf("messages of 8 fds in flight with RLIMIT_NOFILE 16: %d, then %s\n", sent,
           strerrorname_np(errno));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pointers();
    loops();
    flood();
    as_user(forge);
    show("still serving: getpid > 0", getpid() > 0);
    return 0;
}
