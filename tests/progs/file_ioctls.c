/* The ioctls every file takes (Linux's do_vfs_ioctl): FIONBIO, FIOCLEX and
   FIONCLEX, FIOASYNC, FIOQSIZE and FIONREAD on a regular file; EBADF for an
   O_PATH fd; ENOTTY for a terminal request on a file; and lseek's
   SEEK_DATA and SEEK_HOLE on a file without holes; sync_file_range's checks.  Prints results and
   errno names only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define SHOW(what, call) do { errno = 0; long r_ = (call); \
    printf("%-28s %ld %s\n", what, r_, r_ < 0 ? strerrorname_np(errno) : ""); } while (0)

int main(void) {
    int p[2], on = 1, off = 0, n = -1;
    long long q = -1;
    char c;
    pipe(p);
    SHOW("FIONBIO on", ioctl(p[0], FIONBIO, &on));
    printf("O_NONBLOCK now %d\n", !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
    SHOW("read empty pipe", read(p[0], &c, 1));
    SHOW("FIONBIO off", ioctl(p[0], FIONBIO, &off));
    printf("O_NONBLOCK now %d\n", !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
    SHOW("FIOCLEX", ioctl(p[1], FIOCLEX));
    printf("FD_CLOEXEC now %d\n", fcntl(p[1], F_GETFD));
    SHOW("FIONCLEX", ioctl(p[1], FIONCLEX));
    printf("FD_CLOEXEC now %d\n", fcntl(p[1], F_GETFD));
    SHOW("FIOASYNC off", ioctl(p[0], FIOASYNC, &off));
    SHOW("FIONBIO bad pointer", ioctl(p[0], FIONBIO, (int *)8));
    int fd = open("/tmp/ioctl-file", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    lseek(fd, 3, SEEK_SET);
    SHOW("FIONREAD file", ioctl(fd, FIONREAD, &n));
    printf("unread %d\n", n);
    lseek(fd, 20, SEEK_SET);
    SHOW("FIONREAD past EOF", ioctl(fd, FIONREAD, &n));
    printf("unread %d\n", n);
    SHOW("FIOQSIZE file", ioctl(fd, FIOQSIZE, &q));
    printf("allocated bytes known %d\n", q >= 0);   /* the filesystem's to say */
    SHOW("SEEK_DATA 3", lseek(fd, 3, SEEK_DATA));     /* a file without holes */
    SHOW("SEEK_HOLE 3", lseek(fd, 3, SEEK_HOLE));
    SHOW("SEEK_DATA at EOF", lseek(fd, 10, SEEK_DATA));
    SHOW("SEEK_HOLE past EOF", lseek(fd, 11, SEEK_HOLE));
    SHOW("SEEK_DATA on a pipe", lseek(p[0], 0, SEEK_DATA));
    SHOW("sync_file_range WRITE", sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE));
    SHOW("sync_file_range WAIT_AFTER", sync_file_range(fd, 0, 10, SYNC_FILE_RANGE_WRITE |
                                                       SYNC_FILE_RANGE_WAIT_AFTER));
    SHOW("sync_file_range bad flags", sync_file_range(fd, 0, 0, 8));
    SHOW("sync_file_range negative", sync_file_range(fd, -1, 0, 0));
    SHOW("sync_file_range pipe", sync_file_range(p[0], 0, 0, SYNC_FILE_RANGE_WRITE));
    SHOW("FIOQSIZE pipe", ioctl(p[0], FIOQSIZE, &q));
    SHOW("TCGETS on a file", ioctl(fd, TCGETS, &q));
    int path = open("/tmp/ioctl-file", O_PATH);
    SHOW("FIOCLEX on O_PATH", ioctl(path, FIOCLEX));
    SHOW("FIONBIO bad fd", ioctl(99, FIONBIO, &on));
    unlink("/tmp/ioctl-file");
    return 0;
}
