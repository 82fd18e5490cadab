/* What programs learn of the machine from sysinfo(2), statfs(2) and /proc.
 *   procsys sysinfo        sysinfo's fields and /proc/meminfo's, to compare
 *   procsys magic PATH     the statfs f_type of PATH, in hex
 *   procsys peek PID       as uid 54321: read /proc/PID/environ and readlink
 *                          /proc/PID/{exe,cwd,root}; then the same of itself
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static long meminfo_kb(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') { v = atol(line + n + 1); break; }
    fclose(f);
    return v;
}

static void peek(const char *pid) {
    static const char *links[] = {"exe", "cwd", "root"};
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%s/environ", pid);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
    printf("%s environ: %s\n", pid, n >= 0 ? "read" : strerror(errno));
    if (fd >= 0) close(fd);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/proc/%s/%s", pid, links[i]);
        n = readlink(path, buf, sizeof buf - 1);
        printf("%s %s: %s\n", pid, links[i], n >= 0 ? (buf[n] = 0, buf) : strerror(errno));
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "sysinfo")) {
        struct sysinfo si;
        long total = meminfo_kb("MemTotal"), free_before = meminfo_kb("MemFree");
        if (sysinfo(&si)) { perror("sysinfo"); return 1; }
        long free_after = meminfo_kb("MemFree");
        printf("totalram_kb=%lu memtotal_kb=%ld mem_unit=%u\n",
               si.totalram * si.mem_unit / 1024, total, si.mem_unit);
        long freeram = si.freeram * si.mem_unit / 1024;
        long lo = free_before < free_after ? free_before : free_after;
        long hi = free_before < free_after ? free_after : free_before;
        /* the guest's use moves a little between the three looks */
        printf("freeram_between=%s\n", freeram >= lo - 256 && freeram <= hi + 256 ? "yes" : "no");
        printf("shared_kb=%lu shmem_kb=%ld\n", si.sharedram * si.mem_unit / 1024,
               meminfo_kb("Shmem"));
        printf("totalswap=%lu procs_positive=%s uptime_positive=%s\n", si.totalswap,
               si.procs > 0 ? "yes" : "no", si.uptime >= 0 ? "yes" : "no");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "magic")) {
        struct statfs s;
        if (statfs(argv[2], &s)) { perror("statfs"); return 1; }
        printf("%lx\n", (unsigned long)s.f_type);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "peek")) {
        if (setgid(54321) || setuid(54321)) { perror("setuid"); return 1; }
        peek(argv[2]);
        peek("self");                  /* the id change made it not dumpable */
        prctl(PR_SET_DUMPABLE, 1);
        peek("self");
        return 0;
    }
    fprintf(stderr, "usage: procsys sysinfo | magic PATH | peek PID\n");
    return 2;
}
