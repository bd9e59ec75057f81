/* reliaprobe: the hostile sequences of the reliability tests
 * (tests/reliability.rs). Each prints what it saw; a hang is caught by the
 * test's deadline.
 *
 *   reliaprobe signal-dup        dup2() from a signal handler, many times,
 *                                around the program's first dup2()
 *   reliaprobe fork-dup          fork() while another thread is in its first
 *                                dup2(); the child's dup2() must return
 *   reliaprobe via-dlsym LIB     socket() and dup2() reached through
 *                                dlopen(LIB) + dlsym
 *   reliaprobe stderr-swap PORT  with a TCP connection to 127.0.0.1:PORT, a
 *                                thread swaps it onto fd 2 and back while the
 *                                main thread makes sockets
 *   reliaprobe high-fd N         sockets moved to descriptor N and above
 *   reliaprobe close-in-connect  a thread closes the socket another thread is
 *                                connecting; a new socket takes its number
 *   reliaprobe stale HOW         a TCP socket closed HOW (fclose, close_range,
 *                                closefrom, fcntl-dupfd, fcntl-dupfd-cloexec);
 *                                a UDP socket lands on its number, connects
 *   reliaprobe own CASE          the program sets some options itself: psql,
 *                                idle, off (clients), haproxy, memcached
 *                                (listeners) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "options.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* A loopback listener on a port chosen by the kernel. */
static int listener(struct sockaddr_in *addr, int backlog) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    check(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0, "bind");
    check(listen(fd, backlog) == 0, "listen");
    check(getsockname(fd, (struct sockaddr *)addr, &len) == 0, "getsockname");
    return fd;
}

/* ---- signal-dup ---- */
static atomic_int handled;

static void dup_in_handler(int sig) {
    (void)sig;
    int saved = errno;
    dup2(1, 90);
    handled++;
    errno = saved;
}

static int cmd_signal_dup(void) {
    struct sigaction sa = {.sa_handler = dup_in_handler, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval every = {.it_interval = {0, 500}, .it_value = {0, 500}};
    setitimer(ITIMER_REAL, &every, NULL);
    long calls = 0;
    for (double end = now() + 0.3; now() < end; calls++) check(dup2(1, 91) == 91, "dup2");
    struct itimerval stop = {0};
    setitimer(ITIMER_REAL, &stop, NULL);
    printf("signal-dup ok calls=%ld handled=%d\n", calls, (int)handled);
    return 0;
}

/* ---- fork-dup ---- */
static void *first_dup2(void *arg) {
    (void)arg;
    dup2(1, 92);
    return NULL;
}

static int cmd_fork_dup(void) {
    int stuck = 0, failed = 0;
    for (int round = 0; round < 20; round++) {
        pthread_t thread;
        pthread_create(&thread, NULL, first_dup2, NULL);
        usleep(round * 50); /* fork at different points of the other call */
        pid_t child = fork();
        if (child == 0) {
            int ok = dup2(0, 93) == 93 && dup(0) >= 0 && dup3(0, 94, O_CLOEXEC) == 94;
            _exit(ok ? 0 : 1);
        }
        pthread_join(thread, NULL);
        int status = -1;
        double end = now() + 5;
        while (waitpid(child, &status, WNOHANG) == 0) {
            if (now() > end) {
                kill(child, SIGKILL);
                waitpid(child, &status, 0);
                stuck++;
                break;
            }
            usleep(1000);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
    printf("fork-dup children stuck=%d failed=%d\n", stuck, failed);
    return 0;
}

/* ---- via-dlsym ---- */
static int cmd_via_dlsym(const char *lib) {
    void *handle = dlopen(lib, RTLD_NOW);
    check(handle != NULL, "dlopen");
    int (*hooked_socket)(int, int, int) = (int (*)(int, int, int))dlsym(handle, "socket");
    int (*hooked_dup2)(int, int) = (int (*)(int, int))dlsym(handle, "dup2");
    check(hooked_socket && hooked_dup2, "dlsym");
    errno = 0;
    int fd = hooked_socket(AF_INET, SOCK_STREAM, 0);
    int socket_errno = errno;
    int copy = hooked_dup2(1, 95);
    printf("via-dlsym socket=%s errno=%d dup2=%d\n", fd >= 0 ? "fd" : "-1", socket_errno, copy);
    return 0;
}

/* ---- stderr-swap ---- */
static atomic_int swapping = 1;
static int swap_sock, swap_saved;

static void *swapper(void *arg) {
    (void)arg;
    while (swapping) {
        dup2(swap_sock, 2);
        dup2(swap_saved, 2);
    }
    return NULL;
}

static int cmd_stderr_swap(int port) {
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(port)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    swap_sock = socket(AF_INET, SOCK_STREAM, 0);
    check(connect(swap_sock, (struct sockaddr *)&peer, sizeof peer) == 0, "connect");
    swap_saved = dup(2);
    pthread_t thread;
    pthread_create(&thread, NULL, swapper, NULL);
    long sockets = 0;
    for (double end = now() + 0.5; now() < end; sockets++) close(socket(AF_INET, SOCK_STREAM, 0));
    swapping = 0;
    pthread_join(thread, NULL);
    dup2(swap_saved, 2);
    close(swap_sock);
    printf("stderr-swap sockets=%ld\n", sockets);
    return 0;
}

/* ---- high-fd ---- */
static int cmd_high_fd(int number) {
    struct rlimit limit;
    check(getrlimit(RLIMIT_NOFILE, &limit) == 0, "getrlimit");
    limit.rlim_cur = limit.rlim_max; /* the soft limit up to the hard one */
    check(setrlimit(RLIMIT_NOFILE, &limit) == 0, "setrlimit");
    struct sockaddr_in addr;
    int lfd = listener(&addr, 8);
    int off = 0, idle = 5;

    int fd = fcntl(socket(AF_INET, SOCK_STREAM, 0), F_DUPFD, number);
    check(fd == number, "F_DUPFD to the high number");
    check(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off) == 0, "keepalive off");
    check(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    printf("fd=%d ", fd);
    report_socket("off", fd);

    fd = fcntl(socket(AF_INET, SOCK_STREAM, 0), F_DUPFD, number + 1);
    check(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0, "idle");
    check(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    report_socket("idle", fd);

    struct sockaddr_in quiet_addr;
    int quiet = fcntl(listener(&quiet_addr, 8), F_DUPFD, number + 2);
    check(setsockopt(quiet, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off) == 0, "listener off");
    int client = socket(AF_INET, SOCK_STREAM, 0);
    check(connect(client, (struct sockaddr *)&quiet_addr, sizeof quiet_addr) == 0, "connect");
    int accepted = accept(quiet, NULL, NULL);
    check(accepted >= 0, "accept");
    int high_accepted = fcntl(accepted, F_DUPFD, number + 3);
    report_socket("accepted", high_accepted);
    (void)lfd;
    return 0;
}

/* ---- close-in-connect ---- */
static struct sockaddr_in busy_addr;
static int connecting_fd;

static void *connector(void *arg) {
    (void)arg;
    connect(connecting_fd, (struct sockaddr *)&busy_addr, sizeof busy_addr);
    return NULL;
}

static int cmd_close_in_connect(void) {
    /* A backlog of 0 holds one connection: fill it, so the next SYN is
     * dropped and that connect() waits for the retransmission (1 s). */
    int lfd = listener(&busy_addr, 0);
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    check(connect(filler, (struct sockaddr *)&busy_addr, sizeof busy_addr) == 0, "filler");
    connecting_fd = socket(AF_INET, SOCK_STREAM, 0);
    pthread_t thread;
    pthread_create(&thread, NULL, connector, NULL);
    usleep(200000); /* the connect() is in flight */
    int old_number = connecting_fd;
    close(connecting_fd);
    int reused = socket(AF_INET, SOCK_STREAM, 0);
    check(accept(lfd, NULL, NULL) >= 0, "accept"); /* room: the SYN gets through */
    pthread_join(thread, NULL);
    printf("same-number=%d ", reused == old_number);
    report_socket("reused", reused);
    return 0;
}

/* ---- stale ---- */
static int cmd_stale(const char *how) {
    const int number = 50;
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    check(dup2(tcp, number) == number, "dup2");
    close(tcp);
    if (!strcmp(how, "fclose")) {
        FILE *stream = fdopen(number, "r+");
        check(stream != NULL, "fdopen");
        fclose(stream);
    } else if (!strcmp(how, "close_range")) {
        check(close_range(number, number, 0) == 0, "close_range");
    } else if (!strcmp(how, "closefrom")) {
        closefrom(number);
    } else if (!strncmp(how, "fcntl-", 6)) {
        syscall(SYS_close, number); /* unseen by the library: the number is stale */
    } else {
        fprintf(stderr, "unknown way %s\n", how);
        return 2;
    }
    int udp;
    if (!strcmp(how, "fcntl-dupfd") || !strcmp(how, "fcntl-dupfd-cloexec")) {
        int command = !strcmp(how, "fcntl-dupfd") ? F_DUPFD : F_DUPFD_CLOEXEC;
        int source = socket(AF_INET, SOCK_DGRAM, 0);
        udp = fcntl(source, command, number);
    } else {
        /* A raw system call: the library learns nothing about it. */
        int source = syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0);
        udp = syscall(SYS_dup3, source, number, 0) == number ? number : -1;
    }
    check(udp == number, "UDP on the old number");
    struct sockaddr_in dest = {.sin_family = AF_INET, .sin_port = htons(9)};
    dest.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(connect(udp, (struct sockaddr *)&dest, sizeof dest) == 0, "connect UDP");
    int keepalive = -1;
    socklen_t len = sizeof keepalive;
    getsockopt(udp, SOL_SOCKET, SO_KEEPALIVE, &keepalive, &len);
    printf("udp keepalive=%d\n", keepalive);
    return 0;
}

/* ---- own ---- */
static int cmd_own(const char *which) {
    int on = 1, off = 0, zero = 0, idle = 33;
    struct sockaddr_in addr;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (!strcmp(which, "haproxy"))
        check(setsockopt(lfd, IPPROTO_TCP, TCP_USER_TIMEOUT, &zero, sizeof zero) == 0, "ut");
    if (!strcmp(which, "memcached"))
        check(setsockopt(lfd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0, "ka");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    check(bind(lfd, (struct sockaddr *)&addr, sizeof addr) == 0, "bind");
    check(listen(lfd, 8) == 0, "listen");
    check(getsockname(lfd, (struct sockaddr *)&addr, &len) == 0, "getsockname");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (!strcmp(which, "psql"))
        check(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0, "ka");
    if (!strcmp(which, "idle"))
        check(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0, "idle");
    if (!strcmp(which, "off"))
        check(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off) == 0, "off");
    check(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    int accepted = accept(lfd, NULL, NULL);
    check(accepted >= 0, "accept");
    report_socket("client", fd);
    report_socket("accepted", accepted);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && !strcmp(argv[1], "signal-dup")) return cmd_signal_dup();
    if (argc == 2 && !strcmp(argv[1], "fork-dup")) return cmd_fork_dup();
    if (argc == 3 && !strcmp(argv[1], "via-dlsym")) return cmd_via_dlsym(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "stderr-swap")) return cmd_stderr_swap(atoi(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "high-fd")) return cmd_high_fd(atoi(argv[2]));
    if (argc == 2 && !strcmp(argv[1], "close-in-connect")) return cmd_close_in_connect();
    if (argc == 3 && !strcmp(argv[1], "stale")) return cmd_stale(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "own")) return cmd_own(argv[2]);
    fprintf(stderr, "usage: see the comment at the top of reliaprobe.c\n");
    return 2;
}
