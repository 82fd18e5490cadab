/* Timers and time accounting: alarm, setitimer/getitimer, nanosleep cut
 * short by a signal, times, getrusage, sysinfo.  Prints only facts that do
 * not depend on timing, so a native run and a guest run print the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;
static volatile sig_atomic_t disarm_at;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
    if (disarm_at && alarms == disarm_at) {
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
    }
}

static void handle(int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = flags;
    sigaction(SIGALRM, &sa, NULL);
}

static volatile int vtalrms, profs;
static void on_cpu_timer(int sig) { if (sig == SIGVTALRM) vtalrms++; else profs++; }

/* Spin until *count reaches want, or 3 s of CPU time. */
static void burn_until(volatile int *count, int want) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 100000; i++) x += i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    } while (*count < want && t1.tv_sec - t0.tv_sec < 3);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {   /* an alarm outlives exec */
        alarm(1);
        execl("/bin/sleep", "sleep", "5", (char *)NULL);
        return 1;
    }
    handle(0);

    /* alarm then pause: the handler runs, pause fails with EINTR */
    alarms = 0;
    alarm(1);
    int r = pause();
    printf("pause: r=%d errno=%s alarms=%d\n", r, r < 0 && errno == EINTR ? "EINTR" : "?", alarms);

    /* a 50 ms interval timer: three SIGALRMs, then the handler disarms it */
    alarms = 0;
    disarm_at = 3;
    struct itimerval it = {{0, 50000}, {0, 50000}}, old, cur;
    r = setitimer(ITIMER_REAL, &it, &old);
    printf("setitimer: r=%d old=%ld.%06ld\n", r, (long)old.it_value.tv_sec, (long)old.it_value.tv_usec);
    while (alarms < 3)
        pause();
    struct timespec settle = {0, 200000000};
    r = nanosleep(&settle, NULL);
    getitimer(ITIMER_REAL, &cur);
    printf("interval: alarms=%d settle=%d after=%ld.%06ld/%ld.%06ld\n", alarms, r,
           (long)cur.it_value.tv_sec, (long)cur.it_value.tv_usec,
           (long)cur.it_interval.tv_sec, (long)cur.it_interval.tv_usec);
    disarm_at = 0;

    /* setitimer returns the old value; getitimer counts down */
    struct itimerval ten = {{0, 0}, {10, 0}};
    setitimer(ITIMER_REAL, &ten, NULL);
    getitimer(ITIMER_REAL, &cur);
    printf("getitimer: armed=%d\n", cur.it_value.tv_sec <= 10 &&
           (cur.it_value.tv_sec > 0 || cur.it_value.tv_usec > 0));
    pid_t pid = fork();
    if (pid == 0) {          /* a child does not inherit its parent's timers */
        getitimer(ITIMER_REAL, &cur);
        printf("child: timer=%ld.%06ld\n", (long)cur.it_value.tv_sec, (long)cur.it_value.tv_usec);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, &old);
    printf("disarm: old_armed=%d\n", old.it_value.tv_sec > 0 && old.it_value.tv_sec <= 10);

    /* the CPU-time timers fire as CPU time is used: 30 ms of user time for
       SIGVTALRM, then a 20 ms SIGPROF interval three times */
    struct sigaction cpu = {.sa_handler = on_cpu_timer};
    sigaction(SIGVTALRM, &cpu, NULL);
    sigaction(SIGPROF, &cpu, NULL);
    struct itimerval vt = {{0, 0}, {0, 30000}}, prof = {{0, 20000}, {0, 20000}}, zero = {{0, 0}, {0, 0}};
    setitimer(ITIMER_VIRTUAL, &vt, NULL);
    burn_until(&vtalrms, 1);
    setitimer(ITIMER_PROF, &prof, NULL);
    burn_until(&profs, 3);
    setitimer(ITIMER_PROF, &zero, NULL);
    printf("cpu timers: vtalrm=%d prof>=3 %d\n", vtalrms, profs >= 3);

    /* the CPU-time timers are accepted; bad arguments are EINVAL */
    struct itimerval virt = {{0, 0}, {100, 0}}, bad = {{0, 0}, {0, 1000000}};
    int v1 = setitimer(ITIMER_VIRTUAL, &virt, NULL), v2 = getitimer(ITIMER_VIRTUAL, &cur);
    int v3 = cur.it_value.tv_sec > 0 && cur.it_value.tv_sec <= 100;
    int v4 = setitimer(ITIMER_VIRTUAL, &off, NULL), v5 = setitimer(ITIMER_PROF, &off, NULL);
    errno = 0;
    int e1 = setitimer(7, &off, NULL) < 0 && errno == EINVAL;
    errno = 0;
    int e2 = setitimer(ITIMER_REAL, &bad, NULL) < 0 && errno == EINVAL;
    printf("itimer_virtual: r=%d,%d armed=%d off=%d,%d bad_which=%d bad_usec=%d\n",
           v1, v2, v3, v4, v5, e1, e2);

    /* nanosleep cut short by an alarm: EINTR and what was left, even with SA_RESTART */
    for (int flags = 0; flags <= 1; flags++) {
        handle(flags ? SA_RESTART : 0);
        alarms = 0;
        alarm(1);
        struct timespec req = {2, 0}, rem = {-1, -1};
        r = nanosleep(&req, &rem);
        int e = errno;
        printf("nanosleep%s: r=%d errno=%s alarms=%d rem_ok=%d\n", flags ? "(SA_RESTART)" : "",
               r, r < 0 && e == EINTR ? "EINTR" : "?", alarms,
               rem.tv_sec >= 0 && rem.tv_sec < 2 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000 &&
               (rem.tv_sec > 0 || rem.tv_nsec > 0));
    }
    handle(0);
    alarms = 0;
    alarm(1);
    struct timespec req = {2, 0}, rem = {-1, -1};
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    printf("clock_nanosleep: r=%s alarms=%d rem_ok=%d\n", r == EINTR ? "EINTR" : "?", alarms,
           rem.tv_sec >= 0 && rem.tv_sec < 2 && (rem.tv_sec > 0 || rem.tv_nsec > 0));

    /* alarm returns what was left of the previous one */
    alarm(5);
    unsigned left = alarm(0);
    printf("alarm: left_ok=%d then=%u\n", left >= 4 && left <= 5, alarm(0));

    /* times: ticks that go forward */
    struct tms tms;
    clock_t t1 = times(&tms);
    struct timespec tick = {0, 30000000};
    nanosleep(&tick, NULL);
    clock_t t2 = times(&tms);
    printf("times: ok=%d increasing=%d\n", t1 != (clock_t)-1, t2 > t1);

    struct sysinfo si;
    r = sysinfo(&si);
    printf("sysinfo: r=%d procs_ok=%d uptime_ok=%d unit_ok=%d ram_ok=%d\n", r, si.procs >= 1,
           si.uptime >= 0, si.mem_unit >= 1, si.totalram > 0 && si.freeram <= si.totalram);

    struct rusage ru;
    int a = getrusage(RUSAGE_SELF, &ru);
    int b = getrusage(RUSAGE_CHILDREN, &ru);
    int c = getrusage(RUSAGE_THREAD, &ru);
    int d = getrusage(42, &ru);
    printf("getrusage: self=%d children=%d thread=%d bad=%s\n", a, b, c,
           d < 0 && errno == EINVAL ? "EINVAL" : "?");

    /* a child that burns 0.3 s of CPU: wait4's rusage, then the children's
       totals in getrusage and times (the grandchild's too, waited for by it) */
    struct rusage before, wru, after;
    getrusage(RUSAGE_CHILDREN, &before);
    pid = fork();
    if (pid == 0) {
        pid_t g = fork();
        volatile unsigned long x = 0;
        struct timespec s0, s1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &s0);
        do {
            for (int i = 0; i < 1000000; i++) x += i;
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &s1);
        } while ((s1.tv_sec - s0.tv_sec) * 1000 + (s1.tv_nsec - s0.tv_nsec) / 1000000 < 300);
        if (g == 0) _exit(0);
        waitpid(g, NULL, 0);
        _exit(0);
    }
    wait4(pid, NULL, 0, &wru);
    getrusage(RUSAGE_CHILDREN, &after);
    times(&tms);
#define SECS(tv) ((tv).tv_sec + (tv).tv_usec / 1e6)
    /* 0.6 s in all; the host splits user and system time by ticks */
    double wu = SECS(wru.ru_utime) + SECS(wru.ru_stime);
    double cu = SECS(after.ru_utime) + SECS(after.ru_stime)
              - SECS(before.ru_utime) - SECS(before.ru_stime);
    printf("children: wait4_ok=%d getrusage_ok=%d maxrss_ok=%d times_ok=%d\n",
           wu >= 0.3 && wu < 5, cu >= 0.3 && cu < 5, after.ru_maxrss > 0,
           tms.tms_cutime + tms.tms_cstime >= 30);
    return 0;
}
