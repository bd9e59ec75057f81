/* seqprobe: call sequences around connect(), dup() and listen() that a
 * program may make, each printing the keepalive options of the socket that
 * matters as key=value words (see options.h).
 *
 *   seqprobe eintr          a blocking connect() interrupted by a signal
 *                           (EINTR) while the handshake goes on in the
 *                           kernel; the program then only polls for it.
 *   seqprobe dup-choice     the program switches SO_KEEPALIVE off, then
 *                           connects a dup() of the socket: its choice holds.
 *   seqprobe failed-listen  listen() fails (EADDRINUSE), then the program
 *                           connects out on the same socket. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "options.h"

static int listener(struct sockaddr_in *addr, int backlog) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(fd >= 0 && bind(fd, (struct sockaddr *)addr, sizeof *addr) == 0 &&
              listen(fd, backlog) == 0 && getsockname(fd, (struct sockaddr *)addr, &len) == 0,
          "listener");
    return fd;
}

static void on_alarm(int sig) { (void)sig; }

static int cmd_eintr(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: connect() returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    struct sockaddr_in addr;
    int lfd = listener(&addr, 0);
    /* A backlog of 0 holds one connection: fill it, so the next SYN waits. */
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    check(connect(filler, (struct sockaddr *)&addr, sizeof addr) == 0, "filler");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct itimerval soon = {.it_value = {0, 200000}};
    setitimer(ITIMER_REAL, &soon, NULL);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    printf("connect rc=%d errno=%d\n", rc, rc ? errno : 0);
    check(accept(lfd, NULL, NULL) >= 0, "accept"); /* room: the handshake completes */
    struct pollfd ready = {.fd = fd, .events = POLLOUT};
    poll(&ready, 1, 5000);
    report_socket("client", fd);
    return 0;
}

static int cmd_dup_choice(void) {
    struct sockaddr_in addr;
    listener(&addr, 8);
    int fd = socket(AF_INET, SOCK_STREAM, 0), off = 0;
    check(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off) == 0, "setsockopt");
    int copy = dup(fd);
    int copy2 = dup2(fd, 100);
    check(copy >= 0 && copy2 == 100, "dup");
    close(fd); /* only the copies remain */
    check(connect(copy, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    report_socket("client", copy);
    return 0;
}

static int cmd_failed_listen(void) {
    struct sockaddr_in server, taken = {.sin_family = AF_INET};
    listener(&server, 8);
    taken.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int first = socket(AF_INET, SOCK_STREAM, 0), fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(first, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = sizeof taken;
    check(bind(first, (struct sockaddr *)&taken, sizeof taken) == 0, "bind first");
    check(getsockname(first, (struct sockaddr *)&taken, &len) == 0, "getsockname");
    /* Both bound to one address with SO_REUSEADDR, neither listening: bind
     * works; once the first listens, listen() itself fails on the second. */
    check(bind(fd, (struct sockaddr *)&taken, sizeof taken) == 0, "bind second");
    check(listen(first, 8) == 0, "listen first");
    int lrc = listen(fd, 8);
    printf("listen rc=%d errno=%d\n", lrc, lrc ? errno : 0);
    check(connect(fd, (struct sockaddr *)&server, sizeof server) == 0, "connect");
    report_socket("client", fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "eintr")) return cmd_eintr();
    if (argc == 2 && !strcmp(argv[1], "dup-choice")) return cmd_dup_choice();
    if (argc == 2 && !strcmp(argv[1], "failed-listen")) return cmd_failed_listen();
    fprintf(stderr, "usage: seqprobe eintr | dup-choice | failed-listen\n");
    return 2;
}
