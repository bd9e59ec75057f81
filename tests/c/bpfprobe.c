/* A TCP client or server for the kernel-side mode's tests, built static
 * (gcc -static) so that LD_PRELOAD could never reach it.
 *
 *   bpfprobe connect ADDR PORT [WORD...]
 *   bpfprobe accept ADDR PORT [WORD...]
 *
 * WORDs: NAME=VALUE sets an option on the socket before connect()/listen()
 * (the program's own choice), after:NAME=VALUE sets it after connect() or
 * accept(), hold=MS keeps the connection open that long before exiting
 * (default 0), and wait makes it block in recv() afterwards until the
 * connection ends, then print "closed err=ERRNO" (0 for an orderly end).
 * try:NAME=VALUE and byte:NAME=VALUE make a call before connect()/listen()
 * (after the plain ones) whose failure is the program's business, not the
 * probe's: the int as usual, or one byte (optlen 1) that the kernel refuses
 * with EINVAL. They print "refused NAME" to stderr when the call fails.
 * NAME is keepalive, idle, intvl, cnt or user_timeout. The
 * server prints "listening" once it listens. Both then print one line,
 * "connected" and the options getsockopt reads back (options.h), e.g.
 * "connected keepalive=1 idle=60 intvl=10 cnt=6 user_timeout=0". */
#include "options.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int option_of(const char *name, int *level, int *optname) {
    static const struct { const char *name; int level, optname; } known[] = {
        {"keepalive", SOL_SOCKET, SO_KEEPALIVE}, {"idle", IPPROTO_TCP, TCP_KEEPIDLE},
        {"intvl", IPPROTO_TCP, TCP_KEEPINTVL},   {"cnt", IPPROTO_TCP, TCP_KEEPCNT},
        {"user_timeout", IPPROTO_TCP, TCP_USER_TIMEOUT},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i].name) == 0) {
            *level = known[i].level;
            *optname = known[i].optname;
            return 0;
        }
    return -1;
}

/* Applies every WORD with the given prefix ("" or "after:"). */
static void apply(int fd, int argc, char **argv, const char *prefix) {
    size_t plen = strlen(prefix);
    for (int i = 4; i < argc; i++) {
        char name[32];
        int value, level, optname;
        if (strncmp(argv[i], prefix, plen) != 0 || (plen == 0 && strchr(argv[i], ':')))
            continue;
        if (sscanf(argv[i] + plen, "%31[a-z_]=%d", name, &value) != 2 || strcmp(name, "hold") == 0)
            continue;
        if (option_of(name, &level, &optname) != 0) {
            fprintf(stderr, "bpfprobe: unknown option %s\n", name);
            exit(2);
        }
        if (setsockopt(fd, level, optname, &value, sizeof value) != 0) {
            perror("bpfprobe: setsockopt");
            exit(2);
        }
    }
}

/* Applies every try: and byte: WORD; a refused call is only reported. */
static void attempt(int fd, int argc, char **argv) {
    for (int i = 4; i < argc; i++) {
        char name[32];
        int value, level, optname;
        int byte = strncmp(argv[i], "byte:", 5) == 0;
        if (!byte && strncmp(argv[i], "try:", 4) != 0)
            continue;
        if (sscanf(strchr(argv[i], ':') + 1, "%31[a-z_]=%d", name, &value) != 2 ||
            option_of(name, &level, &optname) != 0) {
            fprintf(stderr, "bpfprobe: bad word %s\n", argv[i]);
            exit(2);
        }
        char one = (char)value;
        int refused = byte ? setsockopt(fd, level, optname, &one, 1)
                           : setsockopt(fd, level, optname, &value, sizeof value);
        if (refused != 0)
            fprintf(stderr, "refused %s\n", name);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bpfprobe connect|accept ADDR PORT [WORD...]\n");
        return 2;
    }
    int hold_ms = 0, wait = 0;
    for (int i = 4; i < argc; i++) {
        sscanf(argv[i], "hold=%d", &hold_ms);
        wait |= strcmp(argv[i], "wait") == 0;
    }
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[3]))};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = a6.sin6_port};
    struct sockaddr *address;
    socklen_t length;
    int family;
    if (inet_pton(AF_INET, argv[2], &a4.sin_addr) == 1) {
        address = (struct sockaddr *)&a4, length = sizeof a4, family = AF_INET;
    } else if (inet_pton(AF_INET6, argv[2], &a6.sin6_addr) == 1) {
        address = (struct sockaddr *)&a6, length = sizeof a6, family = AF_INET6;
    } else {
        fprintf(stderr, "bpfprobe: bad address %s\n", argv[2]);
        return 2;
    }
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("bpfprobe: socket");
        return 1;
    }
    apply(fd, argc, argv, "");
    attempt(fd, argc, argv);
    int conn = fd;
    if (strcmp(argv[1], "connect") == 0) {
        if (connect(fd, address, length) != 0) {
            perror("bpfprobe: connect");
            return 1;
        }
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, address, length) != 0 || listen(fd, 8) != 0) {
            perror("bpfprobe: bind/listen");
            return 1;
        }
        printf("listening\n");
        fflush(stdout);
        conn = accept(fd, NULL, NULL);
        if (conn < 0) {
            perror("bpfprobe: accept");
            return 1;
        }
    }
    apply(conn, argc, argv, "after:");
    printf("connected");
    print_option_words(conn);
    printf("\n");
    fflush(stdout);
    struct timespec hold = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    nanosleep(&hold, NULL);
    if (wait) {
        char byte;
        ssize_t got = recv(conn, &byte, 1, 0);
        printf("closed err=%d\n", got < 0 ? errno : 0);
    }
    return 0;
}
