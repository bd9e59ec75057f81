/* lifeprobe: process-life situations for libkeepalive (process_life.rs,
 * hostile.rs, sanitizers.rs): posix_spawn, exec chains, fork while other
 * threads make sockets, socket() from a signal handler that interrupts
 * socket(), a program that closes fds 0-2 and gets TCP sockets there,
 * SIGPIPE, dlopen of the library after start. Prints key=value lines. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int get_int(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    if (getsockopt(fd, level, name, &value, &len)) return -errno;
    return value;
}

/* "keepalive=K idle=I" for fd, into buf. */
static void describe(int fd, char *buf, size_t size) {
    snprintf(buf, size, "keepalive=%d idle=%d", get_int(fd, SOL_SOCKET, SO_KEEPALIVE),
             get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE));
}

static void print_socket(const char *label) {
    char buf[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    describe(fd, buf, sizeof buf);
    printf("%s %s\n", label, buf);
    fflush(stdout);
    close(fd);
}

/* spawn: posix_spawn of this program, directly and through sh. */
static int cmd_spawn(const char *self) {
    char *direct[] = {(char *)self, "socket", "posix_spawn-child", NULL};
    char script[4096];
    snprintf(script, sizeof script, "exec '%s' socket posix_spawnp-sh-child", self);
    char *via_sh[] = {"sh", "-c", script, NULL};
    pid_t pid;
    fflush(stdout);
    if (posix_spawn(&pid, self, NULL, NULL, direct, environ)) return 2;
    waitpid(pid, NULL, 0);
    if (posix_spawnp(&pid, "sh", NULL, NULL, via_sh, environ)) return 2;
    waitpid(pid, NULL, 0);
    return 0;
}

/* exec N: execs itself N more times, every other time through sh, then
 * reports one socket. The environment is passed on unchanged. */
static int cmd_exec(const char *self, int remaining) {
    char next[16];
    snprintf(next, sizeof next, "%d", remaining - 1);
    print_socket(remaining > 0 ? "exec-step" : "exec-last");
    if (remaining == 0) return 0;
    if (remaining % 2)
        execl("/bin/sh", "sh", "-c", "exec \"$0\" exec \"$1\"", self, next, (char *)NULL);
    else
        execl(self, self, "exec", next, (char *)NULL);
    perror("exec");
    return 2;
}

/* forkthreads CHILDREN: forks while four threads make sockets non-stop; each
 * child makes a socket and exits 0 if it was configured. */
static volatile int stop_threads;

static void *churn(void *arg) {
    (void)arg;
    while (!stop_threads) close(socket(AF_INET, SOCK_STREAM, 0));
    return NULL;
}

static int cmd_forkthreads(int children) {
    pthread_t ids[4];
    for (int i = 0; i < 4; i++) pthread_create(&ids[i], NULL, churn, NULL);
    int configured = 0;
    for (int i = 0; i < children; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            _exit(get_int(fd, SOL_SOCKET, SO_KEEPALIVE) == 1 ? 0 : 1);
        }
        int status;
        waitpid(pid, &status, 0);
        configured += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    stop_threads = 1;
    for (int i = 0; i < 4; i++) pthread_join(ids[i], NULL);
    printf("forked=%d configured=%d\n", children, configured);
    return 0;
}

/* signals N: a 50 us interval timer interrupts a loop of N socket()+close();
 * the handler makes and checks a socket of its own each time. */
static volatile sig_atomic_t handler_sockets, handler_configured, handler_errno_kept;

static void on_alarm(int sig) {
    (void)sig;
    int saved = errno;
    errno = 7777;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    handler_errno_kept += errno == 7777;
    handler_sockets++;
    handler_configured += get_int(fd, SOL_SOCKET, SO_KEEPALIVE) == 1;
    close(fd);
    errno = saved;
}

static int cmd_signals(int count) {
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &every, NULL);
    int configured = 0;
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        configured += get_int(fd, SOL_SOCKET, SO_KEEPALIVE) == 1;
        close(fd);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("main=%d main_configured=%d handler=%d handler_configured=%d handler_errno_kept=%d\n",
           count, configured, (int)handler_sockets, (int)handler_configured,
           (int)handler_errno_kept);
    return 0;
}

/* lowfds BYTES: closes 0, 1 and 2, so that a listener, a client and the
 * accepted connection get exactly those numbers; sends BYTES each way and
 * checks them. Reports on a copy of stdout saved first. */
static int send_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int recv_all(int fd, char *buf, size_t len) {
    while (len) {
        ssize_t n = read(fd, buf, len);
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fill(char *buf, size_t len, unsigned seed) {
    for (size_t i = 0; i < len; i++) buf[i] = (char)('a' + (i * 7 + seed) % 26);
}

struct transfer {
    int fd;
    size_t len;
    unsigned seed;
};

static void *sender(void *arg) {
    struct transfer *t = arg;
    char *buf = malloc(t->len);
    fill(buf, t->len, t->seed);
    long rc = send_all(t->fd, buf, t->len);
    free(buf);
    return (void *)rc;
}

static int cmd_lowfds(size_t bytes) {
    int report = dup(1);
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE from anybody would kill us */
    close(0);
    close(1);
    close(2);
    int lfd = socket(AF_INET, SOCK_STREAM, 0); /* 0 */
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4) ||
        getsockname(lfd, (struct sockaddr *)&addr, &len))
        return 2;
    int cfd = socket(AF_INET, SOCK_STREAM, 0); /* 1 */
    if (connect(cfd, (struct sockaddr *)&addr, sizeof addr)) return 2;
    int afd = accept(lfd, NULL, NULL); /* 2 */
    char a[64], b[64];
    describe(cfd, a, sizeof a);
    describe(afd, b, sizeof b);
    dprintf(report, "fds listener=%d client=%d accepted=%d\n", lfd, cfd, afd);
    dprintf(report, "client %s\naccepted %s\n", a, b);
    /* Both directions at once, so neither side blocks on a full buffer. */
    struct transfer out = {cfd, bytes, 1}, back = {afd, bytes, 2};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, sender, &out);
    pthread_create(&t2, NULL, sender, &back);
    char *got = malloc(bytes), *want = malloc(bytes);
    int intact = 1;
    if (recv_all(afd, got, bytes)) intact = 0;
    fill(want, bytes, 1);
    if (memcmp(got, want, bytes)) intact = 0;
    if (recv_all(cfd, got, bytes)) intact = 0;
    fill(want, bytes, 2);
    if (memcmp(got, want, bytes)) intact = 0;
    void *r1, *r2;
    pthread_join(t1, &r1);
    pthread_join(t2, &r2);
    /* Nothing more may arrive (no stray text of anyone's): half-close and
     * expect EOF on both ends. */
    shutdown(cfd, SHUT_WR);
    shutdown(afd, SHUT_WR);
    char extra;
    int stray = (read(afd, &extra, 1) != 0) + (read(cfd, &extra, 1) != 0);
    dprintf(report, "intact=%d sent=%d stray=%d\n", intact, r1 == NULL && r2 == NULL, stray);
    free(got);
    free(want);
    return 0;
}

/* sigpipe: with stderr a pipe nobody reads, the program's own pending
 * SIGPIPE (blocked) must survive our debug writes, which raise and discard
 * one of their own. */
static int cmd_sigpipe(void) {
    sigset_t pipe_only, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* a debug line: EPIPE, no signal */
    close(fd);
    sigpending(&pending);
    int after_ours = sigismember(&pending, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_only, NULL);
    errno = 0;
    ssize_t rc = write(2, "x", 1); /* the program's own: EPIPE and a SIGPIPE */
    int write_errno = errno;
    fd = socket(AF_INET, SOCK_STREAM, 0); /* another debug line */
    close(fd);
    sigpending(&pending);
    printf("ours_pending=%d own_write=%zd own_errno=%d own_pending=%d\n", after_ours, rc,
           write_errno, sigismember(&pending, SIGPIPE));
    fflush(stdout);
    return 0;
}

/* dlopen LIB MODE: libkeepalive loaded by dlopen after start, not preloaded.
 * MODE is local or global. Reports sockets made before, after, through the
 * library's own socket symbol, and after dlclose. */
static int cmd_dlopen(const char *lib, const char *mode) {
    print_socket("before");
    int flags = RTLD_NOW | (!strcmp(mode, "global") ? RTLD_GLOBAL : RTLD_LOCAL);
    errno = 4242;
    void *handle = dlopen(lib, flags);
    printf("dlopen=%s errno_kept=%d\n", handle ? "ok" : dlerror(), errno == 4242);
    if (!handle) return 2;
    print_socket("after");
    int (*hooked)(int, int, int) = (int (*)(int, int, int))dlsym(handle, "socket");
    char buf[64];
    errno = 4242;
    int fd = hooked(AF_INET, SOCK_STREAM, 0);
    int kept = errno == 4242;
    describe(fd, buf, sizeof buf);
    printf("via-dlsym %s errno_kept=%d\n", buf, kept);
    close(fd);
    printf("dlclose=%d\n", dlclose(handle));
    print_socket("after-dlclose");
    return 0;
}

/* bigenv LIB NAME BYTES: sets NAME to BYTES digits, more than execve can
 * pass (128 KiB per string), then dlopens the library, which reads it. */
static int cmd_bigenv(const char *lib, const char *name, size_t bytes) {
    char *value = malloc(bytes + 1);
    memset(value, '7', bytes);
    value[bytes] = 0;
    setenv(name, value, 1);
    free(value);
    void *handle = dlopen(lib, RTLD_NOW);
    if (!handle) return 2;
    int (*hooked)(int, int, int) = (int (*)(int, int, int))dlsym(handle, "socket");
    char buf[64];
    int fd = hooked(AF_INET, SOCK_STREAM, 0);
    describe(fd, buf, sizeof buf);
    printf("via-dlsym %s\n", buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "socket")) {
        print_socket(argc >= 3 ? argv[2] : "socket");
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "spawn")) return cmd_spawn(argv[0]);
    if (argc >= 3 && !strcmp(argv[1], "exec")) return cmd_exec(argv[0], atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "forkthreads")) return cmd_forkthreads(atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "signals")) return cmd_signals(atoi(argv[2]));
    if (argc >= 3 && !strcmp(argv[1], "lowfds")) return cmd_lowfds((size_t)atol(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "sigpipe")) return cmd_sigpipe();
    if (argc >= 4 && !strcmp(argv[1], "dlopen")) return cmd_dlopen(argv[2], argv[3]);
    if (argc >= 5 && !strcmp(argv[1], "bigenv"))
        return cmd_bigenv(argv[2], argv[3], (size_t)atol(argv[4]));
    fprintf(stderr,
            "usage: lifeprobe socket [LABEL] | spawn | exec N | forkthreads N | signals N |\n"
            "       lowfds BYTES | sigpipe | dlopen LIB local|global | bigenv LIB NAME BYTES\n");
    return 2;
}
