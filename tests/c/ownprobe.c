/* A program that sets its own keepalive, as Go's dialer and listener do:
 * right after connect() and accept() it sets SO_KEEPALIVE=1,
 * TCP_KEEPIDLE=15, TCP_KEEPINTVL=15 and TCP_KEEPCNT=9 on the connection,
 * then tries TCP_KEEPIDLE=0 (EINVAL). It prints what each of its own
 * setsockopt calls returned and the options the kernel then reports:
 *
 *   own client SO_KEEPALIVE rc=0 errno=4242
 *   ...
 *   client keepalive=1 idle=15 intvl=15 cnt=9 user_timeout=0
 *   accepted keepalive=1 ...
 *   port=PORT
 *
 * With "hold" it then keeps both ends open until its stdin closes, so a
 * test can read them with ss. For issue 19 item 7 (override). */
#include "options.h"

#include <arpa/inet.h>
#include <string.h>
#include <unistd.h>

static void own(const char *label, int fd, int level, int name, const char *option,
                int value) {
    errno = 4242;
    int rc = setsockopt(fd, level, name, &value, sizeof value);
    printf("own %s %s=%d rc=%d errno=%d\n", label, option, value, rc, errno);
}

/* What Go does to every TCP connection it makes or accepts. */
static void go_keepalive(const char *label, int fd) {
    own(label, fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1);
    own(label, fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", 15);
    own(label, fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", 15);
    own(label, fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", 9);
    /* A value the kernel refuses: the program must see EINVAL still. */
    own(label, fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", 0);
}

int main(int argc, char **argv) {
    int hold = argc > 1 && !strcmp(argv[1], "hold");
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    check(lfd >= 0, "socket");
    check(!bind(lfd, (struct sockaddr *)&addr, sizeof addr), "bind");
    check(!listen(lfd, 4), "listen");
    check(!getsockname(lfd, (struct sockaddr *)&addr, &len), "getsockname");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    check(fd >= 0, "socket");
    check(!connect(fd, (struct sockaddr *)&addr, sizeof addr), "connect");
    go_keepalive("client", fd);
    int afd = accept(lfd, NULL, NULL);
    check(afd >= 0, "accept");
    go_keepalive("accepted", afd);
    report_socket("client", fd);
    report_socket("accepted", afd);
    printf("port=%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    if (hold) {
        char buffer[64];
        while (read(0, buffer, sizeof buffer) > 0) {
        }
    }
    return 0;
}
