/* syscount: walks through the socket calls a client and a server make, one
 * phase at a time, for tests/syscalls.rs to run under strace with and
 * without libkeepalive. Before each phase it makes a marker system call,
 * write(-1, "@NAME", ...), which fails with EBADF and does nothing else but
 * shows up in strace's log, so every system call can be attributed to the
 * phase that caused it. The program does exactly the same calls in every
 * run, so the difference between two logs is the library's work. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void phase(const char *name) {
    char marker[64];
    int len = snprintf(marker, sizeof marker, "@%s", name);
    /* Not checked: it is meant to fail. */
    ssize_t ignored = write(-1, marker, (size_t)len);
    (void)ignored;
}

static void check(int ok, const char *what) {
    if (!ok) {
        perror(what);
        exit(2);
    }
}

/* A listener on 127.0.0.1, port chosen by the kernel; fills in addr. */
static void listen_on_loopback(int fd, struct sockaddr_in *addr) {
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0, "bind");
    check(listen(fd, 16) == 0, "listen");
    check(getsockname(fd, (struct sockaddr *)addr, &len) == 0, "getsockname");
}

int main(void) {
    int one = 1;
    struct sockaddr_in addr, foreign_addr;

    phase("main");

    /* Sockets the library sees created: TCP ones get the options at once. */
    phase("tcp-socket");
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    check(tcp >= 0, "socket");
    phase("tcp6-socket");
    int tcp6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    check(tcp6 >= 0, "socket inet6");
    phase("udp-socket");
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    check(udp >= 0, "socket udp");
    phase("unix-socket");
    int unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    check(unix_fd >= 0, "socket unix");

    /* A server: the listener was configured at socket(); bind/listen and
     * the program's own non-keepalive option cost the library nothing. */
    phase("listener-socket");
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    check(listener >= 0, "socket listener");
    phase("listener-setup");
    check(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, "reuseaddr");
    listen_on_loopback(listener, &addr);

    /* connect() on a socket the library configured: nothing to do. */
    phase("connect");
    check(connect(tcp, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    /* Accepted connections inherit the listener's options in the kernel. */
    phase("accept");
    int accepted = accept(listener, NULL, NULL);
    check(accepted >= 0, "accept");

    phase("client2-socket");
    int client2 = socket(AF_INET, SOCK_STREAM, 0);
    check(client2 >= 0, "socket client2");
    phase("connect2");
    check(connect(client2, (struct sockaddr *)&addr, sizeof addr) == 0, "connect2");
    phase("accept4");
    int accepted4 = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    check(accepted4 >= 0, "accept4");

    /* The program choosing keepalive itself: remembered, no system call. */
    phase("program-setsockopt");
    check(setsockopt(client2, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0, "keepalive");

    /* connect() on a socket that is not TCP: left alone at socket(). */
    phase("udp-connect");
    check(connect(udp, (struct sockaddr *)&addr, sizeof addr) == 0, "connect udp");

    phase("close");
    close(accepted4);
    close(client2);
    close(accepted);
    close(tcp);
    close(tcp6);
    close(udp);
    close(unix_fd);
    close(listener);

    /* A listener the library never saw made (systemd, inetd): it is probed
     * once, at its first accept(), and every connection from it is then
     * configured on its own. */
    phase("foreign-listener");
    int foreign = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    check(foreign >= 0, "raw socket");
    listen_on_loopback(foreign, &foreign_addr);
    phase("foreign-clients");
    int client3 = socket(AF_INET, SOCK_STREAM, 0);
    int client4 = socket(AF_INET, SOCK_STREAM, 0);
    check(client3 >= 0 && client4 >= 0, "socket client3/4");
    check(connect(client3, (struct sockaddr *)&foreign_addr, sizeof foreign_addr) == 0,
          "connect3");
    check(connect(client4, (struct sockaddr *)&foreign_addr, sizeof foreign_addr) == 0,
          "connect4");
    phase("foreign-accept1");
    int accepted_f1 = accept(foreign, NULL, NULL);
    check(accepted_f1 >= 0, "foreign accept 1");
    phase("foreign-accept2");
    int accepted_f2 = accept4(foreign, NULL, NULL, SOCK_CLOEXEC);
    check(accepted_f2 >= 0, "foreign accept 2");

    /* A client socket made by a raw system call: probed and configured at
     * its connect(), once. */
    phase("raw-socket");
    int raw = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    check(raw >= 0, "raw client socket");
    phase("raw-connect");
    check(connect(raw, (struct sockaddr *)&foreign_addr, sizeof foreign_addr) == 0,
          "raw connect");

    phase("end");
    return 0;
}
