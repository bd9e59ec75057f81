/* Shared by the C probes: the keepalive options the kernel reports for a
 * socket, printed as " keepalive=1 idle=60 intvl=10 cnt=6 user_timeout=0"
 * (or "idle=err92" when getsockopt fails), for the Rust tests to parse;
 * and the probes' common helpers. */
#ifndef KEEPALIVE_TEST_OPTIONS_H
#define KEEPALIVE_TEST_OPTIONS_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

static void print_option_words(int fd) {
    static const struct { const char *key; int level, name; } options[] = {
        {"keepalive", SOL_SOCKET, SO_KEEPALIVE},
        {"idle", IPPROTO_TCP, TCP_KEEPIDLE},
        {"intvl", IPPROTO_TCP, TCP_KEEPINTVL},
        {"cnt", IPPROTO_TCP, TCP_KEEPCNT},
        {"user_timeout", IPPROTO_TCP, TCP_USER_TIMEOUT},
    };
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        int value;
        socklen_t len = sizeof value;
        if (getsockopt(fd, options[i].level, options[i].name, &value, &len) == 0)
            printf(" %s=%d", options[i].key, value);
        else
            printf(" %s=err%d", options[i].key, errno);
    }
}

/* Exits with status 2, naming what failed, unless ok. */
static inline void check(int ok, const char *what) {
    if (!ok) {
        perror(what);
        exit(2);
    }
}

/* "LABEL keepalive=... user_timeout=..." on a line of its own, flushed: the
 * tests read it while the probe runs. */
static inline void report_socket(const char *label, int fd) {
    printf("%s", label);
    print_option_words(fd);
    printf("\n");
    fflush(stdout);
}

#endif
