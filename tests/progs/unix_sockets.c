/* AF_UNIX sockets, section by section; prints only what Linux defines
 * (no pids, inode numbers or host paths), so that a run in a guest and a
 * native run print the same.  Usage: unix_sockets SECTION DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sockios.h>

static const char *dir;
static volatile sig_atomic_t sigpipes;

static void on_sigpipe(int sig) { (void)sig; sigpipes++; }

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s = -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s = %ld\n", what, r);
    fflush(stdout);
}

static socklen_t path_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "%s/%s", dir, name);
    return offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path + 1, name);
    return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

static int intopt(int fd, int opt)
{
    int v = -7;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0)
        return -errno * 1000;
    return v;
}

static void mask(const char *what, int fd)
{
    struct pollfd p = {fd, POLLIN | POLLOUT | POLLRDHUP, 0};
    poll(&p, 1, 0);
    printf("%s poll:%s%s%s%s%s\n", what, p.revents & POLLIN ? " IN" : "",
           p.revents & POLLOUT ? " OUT" : "", p.revents & POLLHUP ? " HUP" : "",
           p.revents & POLLRDHUP ? " RDHUP" : "", p.revents & POLLERR ? " ERR" : "");
}

static void pair_section(void)
{
    static const char *names[] = {"stream", "dgram", "seqpacket"};
    static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    char buf[64], line[80];
    for (int i = 0; i < 3; i++) {
        int sv[2];
        show(names[i], socketpair(AF_UNIX, types[i], 0, sv) < 0 ? -1 : 0);
        write(sv[0], "abc", 3);
        write(sv[0], "defgh", 5);
        int n = 0;
        ioctl(sv[1], FIONREAD, &n);
        printf("  FIONREAD %d\n", n);
        ssize_t r = recv(sv[1], buf, 2, MSG_PEEK);
        printf("  peek 2 = %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
        r = recv(sv[1], buf, sizeof buf, 0);
        printf("  recv = %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
        r = recv(sv[1], buf, 2, MSG_DONTWAIT);
        printf("  recv 2 = %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
        r = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
        printf("  recv rest = %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
        if (types[i] != SOCK_STREAM) {
            struct iovec iov = {buf, 2};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
            send(sv[0], "123456", 6, 0);
            r = recvmsg(sv[1], &m, MSG_TRUNC);
            printf("  MSG_TRUNC recvmsg = %zd flags%s\n", r, m.msg_flags & MSG_TRUNC ? " TRUNC" : "");
        }
        show("  recv empty nonblocking", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
        n = -1;
        ioctl(sv[0], SIOCOUTQ, &n);
        printf("  SIOCOUTQ after reads %d\n", n);
        printf("  SO_TYPE %d SO_DOMAIN %d SO_PROTOCOL %d SO_ACCEPTCONN %d\n", intopt(sv[0], SO_TYPE),
               intopt(sv[0], SO_DOMAIN), intopt(sv[0], SO_PROTOCOL), intopt(sv[0], SO_ACCEPTCONN));
        int v = 65536;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
        setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
        printf("  SO_SNDBUF %d SO_RCVBUF %d\n", intopt(sv[0], SO_SNDBUF), intopt(sv[0], SO_RCVBUF));
        v = 1;
        show("  SO_REUSEADDR", setsockopt(sv[0], SOL_SOCKET, SO_REUSEADDR, &v, sizeof v));
        show("  SO_RCVLOWAT on level 0", setsockopt(sv[0], 0, 1, &v, sizeof v));
        struct sockaddr_un a;
        socklen_t len = sizeof a;
        memset(&a, 'x', sizeof a);
        show("  getsockname", getsockname(sv[0], (struct sockaddr *)&a, &len));
        printf("  len %u family %d\n", len, a.sun_family);
        len = sizeof a;
        show("  getpeername", getpeername(sv[0], (struct sockaddr *)&a, &len));
        printf("  len %u\n", len);
        struct stat st;
        fstat(sv[0], &st);
        printf("  fstat S_ISSOCK %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 07777);
        snprintf(buf, sizeof buf, "/proc/self/fd/%d", sv[0]);
        r = readlink(buf, line, sizeof line - 1);
        if (access("/proc/self", F_OK) == 0)    /* a chroot may have no /proc */
            printf("  proc: fd link starts socket:[ %d\n", r > 8 && !strncmp(line, "socket:[", 8));
        show("  lseek", lseek(sv[0], 0, SEEK_SET));
        mask("  before shutdown", sv[1]);
        show("  shutdown SHUT_WR", shutdown(sv[0], SHUT_WR));
        mask("  after peer SHUT_WR", sv[1]);
        show("  read after peer SHUT_WR", recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
        sigpipes = 0;
        show("  write after SHUT_WR", write(sv[0], "x", 1));
        printf("  SIGPIPEs %d\n", (int)sigpipes);
        show("  send MSG_NOSIGNAL", send(sv[0], "x", 1, MSG_NOSIGNAL));
        printf("  SIGPIPEs %d\n", (int)sigpipes);
        close(sv[1]);
        mask("  after peer close", sv[0]);
        show("  write to closed peer", write(sv[0], "x", 1));
        close(sv[0]);
    }

    /* stream: records run together; MSG_WAITALL waits for all */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 4; i++) {
            write(sv[1], "0123", 4);
            usleep(20000);
        }
        _exit(0);
    }
    ssize_t r = recv(sv[0], buf, 16, MSG_WAITALL);
    printf("MSG_WAITALL 16 = %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    waitpid(pid, NULL, 0);
    /* a peer that closes with unread data: ECONNRESET for the other side */
    write(sv[0], "unread", 6);
    close(sv[1]);
    mask("closed with unread data", sv[0]);
    show("read after reset", read(sv[0], buf, sizeof buf));
    show("read again", read(sv[0], buf, sizeof buf));
    close(sv[0]);

    /* readv and writev */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct iovec out[2] = {{"hello ", 6}, {"world", 5}};
    show("writev", writev(sv[0], out, 2));
    char a[4], b[16] = {0};
    struct iovec in[2] = {{a, 4}, {b, sizeof b}};
    r = readv(sv[1], in, 2);
    printf("readv = %zd '%.4s' '%s'\n", r, a, b);
    /* fill a stream until it would block */
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    long total = 0;
    char big[4096] = {0};
    for (;;) {
        r = write(sv[0], big, sizeof big);
        if (r < 0)
            break;
        total += r;
    }
    printf("filled: %s, more than 64 KiB %d\n", strerrorname_np(errno), total > 65536);
    mask("full writer", sv[0]);
    while (read(sv[1], big, sizeof big) == sizeof big && (total -= sizeof big) > 0)
        ;
    mask("drained writer", sv[0]);
    close(sv[0]);
    close(sv[1]);

    /* datagram: an oversized one, a connected dgram pair and sendto */
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    static char huge[300000];
    show("dgram 300000 bytes", send(sv[0], huge, sizeof huge, 0));
    close(sv[0]);
    close(sv[1]);
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    close(sv[1]);
    sigpipes = 0;
    show("seqpacket write to closed peer", write(sv[0], "x", 1));
    printf("SIGPIPEs %d\n", (int)sigpipes);
    close(sv[0]);
}

static void errors_section(void)
{
    show("socket type 11", socket(AF_UNIX, 11, 0));
    show("socket SOCK_RDM", socket(AF_UNIX, SOCK_RDM, 0));
    show("socket protocol 5", socket(AF_UNIX, SOCK_STREAM, 5));
    show("socket bad flag", socket(AF_UNIX, SOCK_STREAM | 0x100, 0));
    show("socket family 99", socket(99, SOCK_STREAM, 0));
    int fd = socket(AF_UNIX, SOCK_RAW, 0);
    printf("SOCK_RAW is SO_TYPE %d\n", intopt(fd, SO_TYPE));
    close(fd);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    printf("flags O_NONBLOCK %d FD_CLOEXEC %d\n", !!(fcntl(fd, F_GETFL) & O_NONBLOCK),
           fcntl(fd, F_GETFD));
    char buf[8];
    show("read unconnected stream", read(fd, buf, sizeof buf));
    show("write unconnected stream", write(fd, "x", 1));
    show("listen unbound", listen(fd, 1));
    show("accept not listening", accept(fd, NULL, NULL));
    show("getpeername unconnected", getpeername(fd, NULL, NULL));
    mask("unconnected stream", fd);
    struct sockaddr_un a;
    socklen_t len = path_addr(&a, "nowhere");
    show("connect to a missing path", connect(fd, (struct sockaddr *)&a, len));
    len = abstract_addr(&a, "skas-nobody-here");
    show("connect to a missing abstract name", connect(fd, (struct sockaddr *)&a, len));
    show("connect with addrlen 2", connect(fd, (struct sockaddr *)&a, 2));
    show("connect with addrlen 200", connect(fd, (struct sockaddr *)&a, 200));
    a.sun_family = AF_INET;
    show("connect AF_INET address", connect(fd, (struct sockaddr *)&a, len));
    show("getsockopt bad name", getsockopt(fd, SOL_SOCKET, 9999, buf, &len));
    show("ioctl bad request", ioctl(fd, 0x1234, 0));
    show("ENOTSOCK", getsockname(0, NULL, NULL));
    show("shutdown how 7", shutdown(fd, 7));
    show("shutdown unconnected", shutdown(fd, SHUT_RDWR));
    close(fd);
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("dgram send unconnected", send(d, "x", 1, 0));
    show("dgram listen", listen(d, 1));
    show("dgram accept", accept(d, NULL, NULL));
    close(d);
}

static void families_section(void)
{
    show("AF_INET stream", socket(AF_INET, SOCK_STREAM, 0) < 0 ? -1 : 0);
    show("AF_INET6 dgram", socket(AF_INET6, SOCK_DGRAM, 0) < 0 ? -1 : 0);
    show("AF_NETLINK raw", socket(AF_NETLINK, SOCK_RAW, 0) < 0 ? -1 : 0);
    int sv[2];
    show("socketpair AF_INET", socketpair(AF_INET, SOCK_STREAM, 0, sv));
}

static void print_peercred(const char *who, int fd, pid_t expected)
{
    struct ucred c;
    socklen_t len = sizeof c;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len);
    printf("%s SO_PEERCRED len %u uid %u gid %u pid is the peer %d\n", who, len, c.uid, c.gid,
           c.pid == expected);
}

static void server_client(const char *kind, struct sockaddr_un *a, socklen_t len)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind", bind(s, (struct sockaddr *)a, len));
    struct sockaddr_un got;
    socklen_t glen = sizeof got;
    getsockname(s, (struct sockaddr *)&got, &glen);
    printf("%s getsockname len %u same %d\n", kind, glen,
           glen == len && !memcmp(&got, a, len));
    int again = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind the same name again", bind(again, (struct sockaddr *)a, len));
    show("bind a bound socket", bind(s, (struct sockaddr *)a, len));
    show("connect before listen", connect(again, (struct sockaddr *)a, len));
    close(again);
    show("listen", listen(s, 4));
    printf("SO_ACCEPTCONN %d\n", intopt(s, SO_ACCEPTCONN));
    mask("listener, nothing pending", s);
    fcntl(s, F_SETFL, O_NONBLOCK);
    show("accept nonblocking, nothing pending", accept(s, NULL, NULL));
    fcntl(s, F_SETFL, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)a, len) < 0) {
            printf("child connect: %s\n", strerrorname_np(errno));
            _exit(1);
        }
        print_peercred("client", c, parent);
        struct sockaddr_un p;
        socklen_t plen = sizeof p;
        getpeername(c, (struct sockaddr *)&p, &plen);
        printf("client getpeername len %u same %d\n", plen, plen == len && !memcmp(&p, a, len));
        write(c, "ping", 4);
        char buf[16];
        ssize_t r = read(c, buf, sizeof buf);
        printf("client read %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
        r = read(c, buf, sizeof buf);
        printf("client read at end %zd\n", r);
        fflush(stdout);
        _exit(0);
    }
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    memset(&peer, 'x', sizeof peer);
    int c = accept4(s, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int nonblock = !!(fcntl(c, F_GETFL) & O_NONBLOCK), cloexec = fcntl(c, F_GETFD);
    fcntl(c, F_SETFL, 0);
    char buf[16];
    ssize_t r = read(c, buf, sizeof buf);     /* the client has printed its lines by now */
    printf("accept4 ok %d peer len %u family %d O_NONBLOCK %d FD_CLOEXEC %d\n", c >= 0, plen,
           peer.sun_family, nonblock, cloexec);
    glen = sizeof got;
    getsockname(c, (struct sockaddr *)&got, &glen);
    printf("accepted getsockname same as listener %d\n", glen == len && !memcmp(&got, a, len));
    print_peercred("server", c, pid);
    printf("server read %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    write(c, "pong", 4);
    close(c);
    waitpid(pid, NULL, 0);
    close(s);
}

static void names_section(void)
{
    umask(022);
    struct sockaddr_un a;
    socklen_t len = path_addr(&a, "sock");
    server_client("path", &a, len);
    struct stat st;
    show("stat the name", stat(a.sun_path, &st));
    printf("S_ISSOCK %d mode %o\n", S_ISSOCK(st.st_mode), st.st_mode & 07777);
    show("open the name", open(a.sun_path, O_RDWR));
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    show("connect after the listener closed", connect(s, (struct sockaddr *)&a, len));
    close(s);
    show("unlink the name", unlink(a.sun_path));
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    show("connect after unlink", connect(s, (struct sockaddr *)&a, len));
    close(s);

    /* a relative name is given back as it was given */
    chdir(dir);
    struct sockaddr_un r = {AF_UNIX, "rel"};
    s = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("bind relative", bind(s, (struct sockaddr *)&r, sizeof r));
    struct sockaddr_un got;
    socklen_t glen = sizeof got;
    getsockname(s, (struct sockaddr *)&got, &glen);
    printf("relative getsockname len %u '%s'\n", glen, got.sun_path);
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("sendto the relative name", sendto(d, "dg", 2, 0, (struct sockaddr *)&r, sizeof r));
    char buf[8];
    glen = sizeof got;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&got, &glen);
    printf("recvfrom %zd from unbound sender addrlen %u\n", n, glen);
    struct sockaddr_un auto_ = {AF_UNIX};
    show("autobind", bind(d, (struct sockaddr *)&auto_, offsetof(struct sockaddr_un, sun_path)));
    glen = sizeof got;
    getsockname(d, (struct sockaddr *)&got, &glen);
    printf("autobind name len %u abstract %d\n", glen, got.sun_path[0] == 0);
    sendto(d, "dg", 2, 0, (struct sockaddr *)&r, sizeof r);
    struct sockaddr_un from;
    socklen_t flen = sizeof from;
    recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    printf("recvfrom an autobound sender: same name %d\n", flen == glen && !memcmp(&from, &got, glen));
    show("connect dgram", connect(d, (struct sockaddr *)&r, sizeof r));
    int third = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("connect the listener back to the other", connect(s, (struct sockaddr *)&got, glen));
    show("a third sends to a socket connected elsewhere",
         sendto(third, "x", 1, 0, (struct sockaddr *)&r, sizeof r));
    struct sockaddr unspec = {AF_UNSPEC};
    show("disconnect dgram", connect(d, &unspec, sizeof unspec));
    show("send after disconnect", send(d, "x", 1, 0));
    close(third);
    close(s);
    show("sendto a closed socket's name", sendto(d, "x", 1, 0, (struct sockaddr *)&r, sizeof r));
    close(d);
    unlink("rel");

    len = abstract_addr(&a, "skas-test-abstract");
    server_client("abstract", &a, len);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    show("connect after the abstract listener closed", connect(s, (struct sockaddr *)&a, len));
    close(s);
}

static int send_fds(int sock, const int *fds, int n, const char *data)
{
    char ctl[CMSG_SPACE(sizeof(int) * 8)] = {0};
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return sendmsg(sock, &m, 0);
}

static int recv_fds(int sock, int *fds, int room, int flags, char *data, int *mflags)
{
    char ctl[CMSG_SPACE(sizeof(int) * 8)];
    struct iovec iov = {data, 15};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = room};
    ssize_t r = recvmsg(sock, &m, flags);
    if (r < 0)
        return -1;
    data[r] = 0;
    *mflags = m.msg_flags;
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(c), n * sizeof(int));
        }
    return n;
}

static void scm_section(void)
{
    char path[256], data[16], buf[32];
    snprintf(path, sizeof path, "%s/passed", dir);
    int file = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
    write(file, "file contents", 13);
    lseek(file, 5, SEEK_SET);
    int p[2];
    pipe(p);
    write(p[1], "through the pipe", 16);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int fds[2] = {file, p[0]};
    show("sendmsg two fds", send_fds(sv[0], fds, 2, "fds"));
    close(file);
    close(p[0]);
    int got[8], mflags;
    int n = recv_fds(sv[1], got, sizeof buf + 64, MSG_CMSG_CLOEXEC, data, &mflags);
    printf("received %d fds with '%s' CTRUNC %d\n", n, data, !!(mflags & MSG_CTRUNC));
    printf("FD_CLOEXEC %d %d\n", fcntl(got[0], F_GETFD), fcntl(got[1], F_GETFD));
    ssize_t r = read(got[0], buf, sizeof buf);
    printf("file read %zd '%.*s' (shared offset)\n", r, (int)(r > 0 ? r : 0), buf);
    r = read(got[1], buf, sizeof buf);
    printf("pipe read %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
    close(p[1]);
    r = read(got[1], buf, sizeof buf);
    printf("pipe read after the writer closed %zd\n", r);
    close(got[0]);
    close(got[1]);

    /* a control buffer with room for one fd of two */
    int again[2] = {0, 1};
    send_fds(sv[0], again, 2, "short");
    n = recv_fds(sv[1], got, CMSG_LEN(sizeof(int)), 0, data, &mflags);
    printf("short control: %d fds, CTRUNC %d, '%s'\n", n, !!(mflags & MSG_CTRUNC), data);
    for (int i = 0; i < n; i++)
        close(got[i]);
    send_fds(sv[0], again, 2, "none");
    r = read(sv[1], buf, sizeof buf);
    printf("read() drops the fds: %zd '%.*s'\n", r, (int)r, buf);
    /* the fds end a stream read: data after them comes on the next */
    send_fds(sv[0], again, 1, "one");
    write(sv[0], "two", 3);
    n = recv_fds(sv[1], got, 64, 0, data, &mflags);
    printf("fds end a read: '%s', then ", data);
    for (int i = 0; i < n; i++)
        close(got[i]);
    r = read(sv[1], buf, sizeof buf);
    printf("'%.*s'\n", (int)r, buf);
    /* bad fds and too many */
    int bad[1] = {999};
    show("send a bad fd", send_fds(sv[0], bad, 1, "bad"));
    {
        char ctl[CMSG_SPACE(sizeof(int) * 254)] = {0};
        struct iovec iov = {"x", 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                           .msg_controllen = sizeof ctl};
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * 254);
        show("send 254 fds", sendmsg(sv[0], &m, 0));
        c->cmsg_len = CMSG_LEN(sizeof(int) * 253);
        m.msg_controllen = CMSG_SPACE(sizeof(int) * 253);
        show("send 253 fds", sendmsg(sv[0], &m, 0));
        char rc[CMSG_SPACE(sizeof(int) * 253)];
        char d;
        struct iovec riov = {&d, 1};
        struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rc,
                            .msg_controllen = sizeof rc};
        show("receive 253 fds", recvmsg(sv[1], &rm, 0));
        c = CMSG_FIRSTHDR(&rm);
        int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        printf("got %d fds\n", k);
        for (int i = 0; i < k; i++)
            close(((int *)CMSG_DATA(c))[i]);
    }

    /* credentials: SO_PASSCRED on the receiver; a sender's own, given explicitly */
    int on = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
    printf("SO_PASSCRED %d\n", intopt(sv[1], SO_PASSCRED));
    write(sv[0], "who", 3);
    char ctl[256];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                       .msg_controllen = sizeof ctl};
    r = recvmsg(sv[1], &m, 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred u;
        memcpy(&u, CMSG_DATA(c), sizeof u);
        printf("SCM_CREDENTIALS len %zu uid %u gid %u pid is mine %d controllen %zu\n",
               (size_t)c->cmsg_len, u.uid, u.gid, u.pid == getpid(), (size_t)m.msg_controllen);
    } else {
        printf("no credentials (%zd)\n", r);
    }
    struct ucred mine = {getpid(), getuid(), getgid()};
    char sctl[CMSG_SPACE(sizeof mine)] = {0};
    struct iovec siov = {"me", 2};
    struct msghdr sm = {.msg_iov = &siov, .msg_iovlen = 1, .msg_control = sctl,
                        .msg_controllen = sizeof sctl};
    c = CMSG_FIRSTHDR(&sm);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof mine);
    memcpy(CMSG_DATA(c), &mine, sizeof mine);
    show("send my own credentials", sendmsg(sv[0], &sm, 0));
    m.msg_controllen = CMSG_LEN(4);       /* too short for the credentials */
    r = recvmsg(sv[1], &m, 0);
    printf("short control for credentials: %zd CTRUNC %d\n", r, !!(m.msg_flags & MSG_CTRUNC));
    close(sv[0]);
    close(sv[1]);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    dir = argv[2];
    signal(SIGPIPE, on_sigpipe);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(argv[1], "pair"))
        pair_section();
    else if (!strcmp(argv[1], "errors"))
        errors_section();
    else if (!strcmp(argv[1], "families"))
        families_section();
    else if (!strcmp(argv[1], "names"))
        names_section();
    else if (!strcmp(argv[1], "scm"))
        scm_section();
    else
        return 2;
    return 0;
}
