/* sockprobe: creates sockets the ways real programs do and prints what the
 * kernel reports for their keepalive options, as key=value words, so the
 * Rust tests can compare runs with and without libkeepalive. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "options.h"

static int get_int(int fd, int level, int name, int *out) {
    socklen_t len = sizeof *out;
    return getsockopt(fd, level, name, out, &len);
}

/* One line: what the kernel says about fd's keepalive options. */
static void print_options(const char *label, int fd) {
    printf("%s fd=%d", label, fd);
    print_option_words(fd);
    printf("\n");
    fflush(stdout);
}

static int parse_domain(const char *s) {
    if (!strcmp(s, "inet")) return AF_INET;
    if (!strcmp(s, "inet6")) return AF_INET6;
    if (!strcmp(s, "unix")) return AF_UNIX;
    if (!strcmp(s, "netlink")) return AF_NETLINK;
    return atoi(s);
}

static int parse_type(const char *s) {
    int type = 0;
    if (!strncmp(s, "stream", 6)) type = SOCK_STREAM;
    else if (!strncmp(s, "dgram", 5)) type = SOCK_DGRAM;
    else if (!strncmp(s, "raw", 3)) type = SOCK_RAW;
    else if (!strncmp(s, "seqpacket", 9)) type = SOCK_SEQPACKET;
    else type = atoi(s);
    if (strstr(s, "+nonblock")) type |= SOCK_NONBLOCK;
    if (strstr(s, "+cloexec")) type |= SOCK_CLOEXEC;
    return type;
}

static int find_keepalive(struct dl_phdr_info *info, size_t size, void *found) {
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libkeepalive")) *(int *)found = 1;
    return 0;
}

/* Whether libkeepalive is mapped into this process: proves a test that
 * expects "untouched" really ran with the library loaded. */
static int library_loaded(void) {
    int found = 0;
    dl_iterate_phdr(find_keepalive, &found);
    return found;
}

/* socket DOMAIN TYPE PROTOCOL: one socket, its options, errno kept. */
static int cmd_socket(char **argv) {
    errno = 4242; /* a success must leave errno exactly as it was */
    int fd = socket(parse_domain(argv[0]), parse_type(argv[1]), atoi(argv[2]));
    int saved = errno;
    printf("rc=%d errno=%d loaded=%d\n", fd < 0 ? -1 : 0, saved, library_loaded());
    if (fd >= 0) print_options("socket", fd);
    return 0;
}

/* A listener on 127.0.0.1 made through libc (or a raw system call). */
static int listener(int raw, struct sockaddr_in *addr) {
    int fd = raw ? (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0)
                 : socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof *addr) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)addr, &len)) {
        perror("listener");
        exit(2);
    }
    return fd;
}

static void set_int(int fd, int level, int name, int value) {
    if (setsockopt(fd, level, name, &value, sizeof value)) {
        perror("setsockopt");
        exit(2);
    }
}

/* connect HOW: a client socket made HOW, connected to a local listener;
 * prints the client's options after connect() and the accepted socket's. */
static int cmd_connect(char **argv) {
    const char *how = argv[0];
    struct sockaddr_in addr;
    int lfd = listener(!strcmp(how, "foreign-listener"), &addr);
    int fd;
    if (!strcmp(how, "raw-syscall"))
        fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    else
        fd = socket(AF_INET, SOCK_STREAM, 0);
    if (!strcmp(how, "program-off")) set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
    if (!strcmp(how, "program-idle")) set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77);
    if (!strcmp(how, "program-user-timeout")) set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 4321);
    if (!strcmp(how, "recycled-raw")) {
        /* Our socket() configured this number; after close() a raw system
         * call gets the same number: it must be configured at connect(). */
        close(fd);
        fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    }
    if (!strcmp(how, "listener-off")) {
        set_int(lfd, SOL_SOCKET, SO_KEEPALIVE, 0);
        print_options("listener", lfd);
    }
    errno = 4242;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    printf("connect rc=%d errno=%d\n", rc, errno);
    /* Off once connected: with rules, after the socket was decided. */
    if (!strcmp(how, "program-off-after")) set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
    print_options("client", fd);
    int afd = !strcmp(how, "accept4") ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC)
                                      : accept(lfd, NULL, NULL);
    if (!strcmp(how, "accepted-off")) set_int(afd, SOL_SOCKET, SO_KEEPALIVE, 0);
    print_options("accepted", afd);
    return 0;
}

/* errno: each failure path and a success, printed for comparison. */
static void report(const char *name, int rc) {
    printf("case=%s rc=%d errno=%d\n", name, rc < 0 ? -1 : 0, rc < 0 ? errno : 0);
}

static int cmd_errno(void) {
    struct sockaddr_in addr;
    int lfd = listener(0, &addr);
    errno = 0;
    report("bad-domain", socket(12345, SOCK_STREAM, 0));
    report("bad-type", socket(AF_INET, 999, 0));
    report("bad-protocol", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    report("no-ipx", socket(AF_IPX, SOCK_DGRAM, 0));
    report("connect-bad-fd", connect(987, (struct sockaddr *)&addr, sizeof addr));
    int file = open("/dev/null", O_RDONLY);
    report("connect-not-socket", connect(file, (struct sockaddr *)&addr, sizeof addr));
    report("accept-not-socket", accept(file, NULL, NULL));
    report("accept-bad-fd", accept4(987, NULL, NULL, 0));
    report("setsockopt-bad-fd", setsockopt(987, SOL_SOCKET, SO_KEEPALIVE, &(int){1}, sizeof(int)));
    report("close-bad-fd", close(987));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in closed = addr;
    close(lfd); /* nothing listens there now */
    report("connect-refused", connect(fd, (struct sockaddr *)&closed, sizeof closed));
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    report("connect-wrong-family", connect(nb, (struct sockaddr *)&v6, sizeof v6));
    struct sockaddr_in l2addr;
    int l2 = listener(0, &l2addr);
    report("connect-nonblocking", connect(nb, (struct sockaddr *)&l2addr, sizeof l2addr));
    int blocking = socket(AF_INET, SOCK_STREAM, 0);
    errno = 4242;
    int rc = connect(blocking, (struct sockaddr *)&l2addr, sizeof l2addr);
    printf("case=success-keeps-errno rc=%d errno=%d\n", rc, errno);
    errno = 4242;
    rc = accept(l2, NULL, NULL);
    printf("case=accept-success-keeps-errno rc=%d errno=%d\n", rc < 0 ? -1 : 0, errno);
    errno = 4242;
    rc = close(rc);
    printf("case=close-success-keeps-errno rc=%d errno=%d\n", rc, errno);
    return 0;
}

/* threads N M: N threads each make M sockets; counts the configured ones. */
static int expected_idle;
static int per_thread;
static pthread_barrier_t start_line;

static void *make_sockets(void *arg) {
    long configured = 0;
    (void)arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < per_thread; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int on = 0, idle = 0;
        if (fd >= 0 && get_int(fd, SOL_SOCKET, SO_KEEPALIVE, &on) == 0 &&
            get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle) == 0 && on == 1 && idle == expected_idle)
            configured++;
        close(fd);
    }
    return (void *)configured;
}

static int cmd_threads(char **argv) {
    int threads = atoi(argv[0]);
    per_thread = atoi(argv[1]);
    expected_idle = atoi(argv[2]);
    pthread_t ids[64];
    long total = 0;
    pthread_barrier_init(&start_line, NULL, threads);
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, make_sockets, NULL);
    for (int i = 0; i < threads; i++) {
        void *configured;
        pthread_join(ids[i], &configured);
        total += (long)configured;
    }
    printf("sockets=%ld configured=%ld\n", (long)threads * per_thread, total);
    return 0;
}

/* fork, vfork and a signal handler each make a socket. */
static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    print_options("signal", fd); /* printf in a handler: fine for a test */
    close(fd);
    errno = saved;
}

static int cmd_process(void) {
    pid_t pid = fork();
    if (pid == 0) {
        print_options("fork-child", socket(AF_INET, SOCK_STREAM, 0));
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    int fds[2];
    if (pipe(fds)) return 2;
    pid = vfork();
    if (pid == 0) {
        /* Only async-signal-safe work in a vfork child: report through a pipe. */
        int fd = socket(AF_INET, SOCK_STREAM, 0), on = -1;
        socklen_t len = sizeof on;
        getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len);
        char c = (char)('0' + on);
        if (write(fds[1], &c, 1) != 1) _exit(1);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    char c = '?';
    if (read(fds[0], &c, 1) != 1) return 2;
    printf("vfork-child keepalive=%c\n", c);
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "socket")) return cmd_socket(argv + 2);
    if (argc >= 3 && !strcmp(argv[1], "connect")) return cmd_connect(argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "errno")) return cmd_errno();
    if (argc >= 5 && !strcmp(argv[1], "threads")) return cmd_threads(argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "process")) return cmd_process();
    fprintf(stderr,
            "usage: sockprobe socket DOMAIN TYPE PROTOCOL | connect HOW | errno |\n"
            "       threads N M EXPECTED_IDLE | process\n");
    return 2;
}
