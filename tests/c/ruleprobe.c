/* ruleprobe: real connections for the KEEPALIVE_RULES tests (tests/rules.rs).
 * Prints the keepalive options the kernel reports for each socket, as
 * key=value words, and keeps connections open until stdin closes so that
 * the tests can look at them from outside with `ss -tno`.
 *
 *   ruleprobe pair LISTEN_ADDR CONNECT_ADDR [accept=addr|null|short|accept4]
 *                  [client=libc|raw|program-idle] [listener=libc|raw]
 *       One process, both ends: a listener on LISTEN_ADDR (port chosen by
 *       the kernel), a client connected to CONNECT_ADDR on that port, the
 *       accepted socket; prints "client ..." and "accepted ...".
 *   ruleprobe serve ADDR PORT [PORT...]
 *       Listens on each port ("::" is dual-stack), prints "listening", then
 *       accepts (peer address requested) and prints "accepted ..." for each
 *       connection, until stdin closes.
 *   ruleprobe connect ADDR PORT [ADDR PORT...]
 *       Connects to each, prints "client ..." with its local port, and holds
 *       the connections until stdin closes.
 *
 * An address with a colon is IPv6 (an AF_INET6 socket), so ::ffff:127.0.0.2
 * is an IPv4-mapped destination on an AF_INET6 socket, as Java makes them. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "options.h"

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void print_options(const char *label, int fd, const char *extra) {
    printf("%s %s", label, extra);
    print_option_words(fd);
    printf("\n");
    fflush(stdout);
}

/* ADDR and PORT into a sockaddr; returns its length and the family. */
static socklen_t make_addr(const char *text, int port, struct sockaddr_storage *ss, int *family) {
    memset(ss, 0, sizeof *ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)port);
        if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1) die(text);
        *family = AF_INET6;
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, text, &a->sin_addr) != 1) die(text);
    *family = AF_INET;
    return sizeof *a;
}

/* "addr:port" of a sockaddr, for the output. */
static void describe(const struct sockaddr_storage *ss, char *out, size_t size) {
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, size, "%s:%d", host, port);
}

static int local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len)) die("getsockname");
    return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int set_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* A listener on ADDR:PORT (0: any); dual-stack when ADDR is IPv6. */
static int listen_on(const char *addr, int port, int raw) {
    struct sockaddr_storage ss;
    int family;
    socklen_t len = make_addr(addr, port, &ss, &family);
    int fd = raw ? (int)syscall(SYS_socket, family, SOCK_STREAM, 0) : socket(family, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (family == AF_INET6 && set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0)) die("IPV6_V6ONLY");
    if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) die("SO_REUSEADDR");
    if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 64)) die("bind/listen");
    return fd;
}

static int connect_to(const char *addr, int port, const char *how) {
    struct sockaddr_storage ss;
    int family;
    socklen_t len = make_addr(addr, port, &ss, &family);
    int fd = !strcmp(how, "raw") ? (int)syscall(SYS_socket, family, SOCK_STREAM, 0)
                                 : socket(family, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (!strcmp(how, "program-idle") && set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77)) die("idle");
    if (connect(fd, (struct sockaddr *)&ss, len)) die("connect");
    return fd;
}

static const char *word(int argc, char **argv, const char *key, const char *fallback) {
    size_t n = strlen(key);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=') return argv[i] + n + 1;
    return fallback;
}

/* accept() in one of the ways programs call it. */
static int accept_as(int lfd, const char *mode, char *peer, size_t size) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len = sizeof ss;
    int fd;
    if (!strcmp(mode, "null")) {
        fd = accept(lfd, NULL, NULL);
    } else if (!strcmp(mode, "short")) {
        len = 8; /* too small for any IP address: the kernel truncates */
        fd = accept(lfd, (struct sockaddr *)&ss, &len);
    } else if (!strcmp(mode, "accept4")) {
        fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    } else {
        fd = accept(lfd, (struct sockaddr *)&ss, &len);
    }
    if (fd < 0) die("accept");
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len)) die("getpeername");
    describe(&ss, peer, size);
    return fd;
}

static int cmd_pair(int argc, char **argv) {
    const char *accept_mode = word(argc, argv, "accept", "addr");
    const char *client_how = word(argc, argv, "client", "libc");
    int lfd = listen_on(argv[0], 0, !strcmp(word(argc, argv, "listener", "libc"), "raw"));
    int cfd = connect_to(argv[1], local_port(lfd), client_how);
    char peer[80], extra[120];
    int afd = accept_as(lfd, accept_mode, peer, sizeof peer);
    print_options("client", cfd, "");
    snprintf(extra, sizeof extra, "peer=%s", peer);
    print_options("accepted", afd, extra);
    return 0;
}

/* Waits until stdin closes; meanwhile accepts on the listeners, if any. */
static void hold(int *listeners, int count) {
    struct pollfd fds[17];
    fds[0] = (struct pollfd){.fd = 0, .events = POLLIN};
    for (int i = 0; i < count; i++) fds[i + 1] = (struct pollfd){.fd = listeners[i], .events = POLLIN};
    for (;;) {
        if (poll(fds, (nfds_t)count + 1, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[0].revents) {
            char buffer[256];
            ssize_t n = read(0, buffer, sizeof buffer);
            if (n <= 0) return;
        }
        for (int i = 0; i < count; i++) {
            if (!(fds[i + 1].revents & POLLIN)) continue;
            char peer[80], extra[160];
            int afd = accept_as(listeners[i], "addr", peer, sizeof peer);
            snprintf(extra, sizeof extra, "peer=%s local_port=%d", peer, local_port(afd));
            print_options("accepted", afd, extra);
        }
    }
}

static int cmd_serve(int argc, char **argv) {
    int listeners[16], count = 0;
    for (int i = 1; i < argc && count < 16; i++) listeners[count++] = listen_on(argv[0], atoi(argv[i]), 0);
    printf("listening\n");
    fflush(stdout);
    hold(listeners, count);
    return 0;
}

static int cmd_connect(int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i += 2) {
        int fd = connect_to(argv[i], atoi(argv[i + 1]), "libc");
        char extra[160];
        snprintf(extra, sizeof extra, "to=%s:%s local_port=%d", argv[i], argv[i + 1], local_port(fd));
        print_options("client", fd, extra);
    }
    hold(NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "pair")) return cmd_pair(argc - 2, argv + 2);
    if (argc >= 4 && !strcmp(argv[1], "serve")) return cmd_serve(argc - 2, argv + 2);
    if (argc >= 4 && !strcmp(argv[1], "connect")) return cmd_connect(argc - 2, argv + 2);
    fprintf(stderr,
            "usage: ruleprobe pair LISTEN CONNECT [accept=..] [client=..] [listener=..] |\n"
            "       serve ADDR PORT... | connect ADDR PORT [ADDR PORT]...\n");
    return 2;
}
