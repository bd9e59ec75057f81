/* errnoprobe: the host's view of its own calls. `errno` walks through
 * failure paths of socket/connect/accept/accept4/setsockopt/close (and
 * successes, which must leave errno alone; fclose of streams with no
 * descriptor), including EMFILE under a low
 * RLIMIT_NOFILE; `fds` lists /proc/self/fd before and after socket work.
 * The Rust test (process_life.rs) compares runs with and without
 * libkeepalive: every line must be identical. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* Prints one case; errno is read first, before printf can change it. Each
 * case sets errno to 4242 first, so a success must still show 4242. */
#define CASE(name, call)                                                 \
    do {                                                                 \
        errno = 4242;                                                    \
        long rc_ = (long)(call);                                         \
        int errno_ = errno;                                              \
        printf("case=%s rc=%ld errno=%d\n", name, rc_ < 0 ? -1L : 0L, errno_); \
    } while (0)

static struct sockaddr_in loopback_listener(int *fd, int type_flags) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    *fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
    if (*fd < 0 || bind(*fd, (struct sockaddr *)&addr, sizeof addr) || listen(*fd, 8) ||
        getsockname(*fd, (struct sockaddr *)&addr, &len)) {
        perror("listener");
        exit(2);
    }
    return addr;
}

static int one = 1, zero = 0;

static int cmd_errno(int with_emfile) {
    int lfd, nblfd;
    struct sockaddr_in addr = loopback_listener(&lfd, 0);
    loopback_listener(&nblfd, SOCK_NONBLOCK);
    int file = open("/dev/null", O_RDONLY);

    CASE("socket-bad-domain-EAFNOSUPPORT", socket(12345, SOCK_STREAM, 0));
    CASE("socket-bad-type-EINVAL", socket(AF_INET, 999, 0));
    CASE("socket-bad-flags-EINVAL", socket(AF_INET, SOCK_STREAM | 0x40000000, 0));
    CASE("socket-bad-protocol-EPROTONOSUPPORT", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    CASE("socket-success", socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    /* MPTCP takes the keepalive options but not TCP_USER_TIMEOUT: one of
     * the library's own setsockopt calls fails, errno must not show it. */
    CASE("socket-mptcp-success", socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP));

    CASE("connect-EBADF", connect(987, (struct sockaddr *)&addr, sizeof addr));
    CASE("connect-negative-EBADF", connect(-5, (struct sockaddr *)&addr, sizeof addr));
    CASE("connect-ENOTSOCK", connect(file, (struct sockaddr *)&addr, sizeof addr));
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    CASE("connect-wrong-family-EAFNOSUPPORT", connect(tcp, (struct sockaddr *)&v6, sizeof v6));
    CASE("connect-short-address-EINVAL", connect(tcp, (struct sockaddr *)&addr, 3));
    CASE("connect-success", connect(tcp, (struct sockaddr *)&addr, sizeof addr));
    CASE("connect-again-EISCONN", connect(tcp, (struct sockaddr *)&addr, sizeof addr));
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CASE("connect-nonblocking-EINPROGRESS", connect(nb, (struct sockaddr *)&addr, sizeof addr));
    struct sockaddr_in refused;
    int gone;
    refused = loopback_listener(&gone, 0);
    close(gone); /* nothing listens there any more */
    int tcp2 = socket(AF_INET, SOCK_STREAM, 0);
    CASE("connect-ECONNREFUSED", connect(tcp2, (struct sockaddr *)&refused, sizeof refused));

    CASE("accept-success", accept(lfd, NULL, NULL));
    CASE("accept-EBADF", accept(987, NULL, NULL));
    CASE("accept-ENOTSOCK", accept(file, NULL, NULL));
    CASE("accept-not-listening-EINVAL", accept(tcp2, NULL, NULL));
    CASE("accept-nonblocking-EAGAIN", accept(nblfd, NULL, NULL));
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    CASE("accept-udp-EOPNOTSUPP", accept(udp, NULL, NULL));
    CASE("accept4-bad-flags-EINVAL", accept4(lfd, NULL, NULL, 0x7));
    CASE("accept4-nonblocking-EAGAIN", accept4(nblfd, NULL, NULL, SOCK_CLOEXEC));

    CASE("setsockopt-success", setsockopt(tcp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    CASE("setsockopt-keepidle-zero-EINVAL", setsockopt(tcp, IPPROTO_TCP, TCP_KEEPIDLE, &zero, sizeof zero));
    CASE("setsockopt-bad-option-ENOPROTOOPT", setsockopt(tcp, IPPROTO_TCP, 12345, &one, sizeof one));
    CASE("setsockopt-short-EINVAL", setsockopt(tcp, SOL_SOCKET, SO_KEEPALIVE, &one, 1));
    CASE("setsockopt-EBADF", setsockopt(987, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
    CASE("setsockopt-ENOTSOCK", setsockopt(file, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
    CASE("setsockopt-udp-keepidle-ENOPROTOOPT", setsockopt(udp, IPPROTO_TCP, TCP_KEEPIDLE, &one, sizeof one));

    CASE("close-success", close(udp));
    CASE("close-EBADF", close(987));
    CASE("close-again-EBADF", close(udp));

    /* Streams without a descriptor: fileno() on them fails with EBADF, the
     * real fclose succeeds and leaves errno alone. */
    char memory[16] = "x";
    CASE("fclose-fmemopen-success", fclose(fmemopen(memory, sizeof memory, "r")));
    char *buffer = NULL;
    size_t size = 0;
    FILE *memstream = open_memstream(&buffer, &size);
    fputs("x", memstream);
    CASE("fclose-open_memstream-success", fclose(memstream));
    free(buffer);
    cookie_io_functions_t nothing = {0};
    CASE("fclose-fopencookie-success", fclose(fopencookie(NULL, "w", nothing)));
    CASE("fclose-file-success", fclose(fopen("/dev/null", "r")));

    /* EMFILE: a pending connection for accept(), then the limit lowered and
     * every free number used up. The number of sockets that fit shows that
     * nobody else holds a descriptor. (Not under valgrind, which does not
     * enforce RLIMIT_NOFILE for its client.) */
    if (!with_emfile) return 0;
    int pending = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(pending, (struct sockaddr *)&addr, sizeof addr)) return 2;
    /* Only the soft limit: valgrind refuses to change the hard one. */
    struct rlimit low;
    if (getrlimit(RLIMIT_NOFILE, &low)) return 2;
    low.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &low)) {
        perror("setrlimit");
        return 2;
    }
    int made = 0, fd;
    errno = 0;
    while (made < 1000 && (fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0) made++;
    printf("case=socket-EMFILE made=%d errno=%d\n", made, errno);
    CASE("socket-udp-EMFILE", socket(AF_INET, SOCK_DGRAM, 0));
    CASE("accept-EMFILE", accept(lfd, NULL, NULL));
    CASE("accept4-EMFILE", accept4(lfd, NULL, NULL, SOCK_CLOEXEC));
    close(fd < 0 ? 63 : fd);
    CASE("accept-after-one-freed", accept(lfd, NULL, NULL));
    return 0;
}

/* efault: pointers the kernel refuses with EFAULT. A program may pass them
 * (a fuzzer, a test suite, a bug it handles); the library must neither read
 * through them nor crash. Each line is flushed, so a crash shows where. */
static int cmd_efault(void) {
    int lfd;
    struct sockaddr_in addr = loopback_listener(&lfd, 0);
    struct sockaddr *bad_address = (struct sockaddr *)16;
    socklen_t *bad_length = (socklen_t *)16;
    setvbuf(stdout, NULL, _IONBF, 0);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    CASE("connect-bad-address-EFAULT", connect(tcp, bad_address, sizeof addr));
    for (int i = 0; i < 3; i++) {
        int client = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client, (struct sockaddr *)&addr, sizeof addr)) return 2;
    }
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    CASE("accept-bad-address-EFAULT", accept(lfd, bad_address, &len));
    CASE("accept-bad-length-EFAULT", accept(lfd, (struct sockaddr *)&peer, bad_length));
    CASE("accept4-bad-length-EFAULT", accept4(lfd, (struct sockaddr *)&peer, bad_length, 0));
    return 0;
}

/* The open descriptors as "N:kind" words, kinds without inode numbers
 * (socket:[123] -> socket), sorted; the listing's own descriptor left out. */
static void list_fds(const char *label) {
    DIR *dir = opendir("/proc/self/fd");
    int numbers[1024], count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) && count < 1024) {
        if (entry->d_name[0] == '.') continue;
        int fd = atoi(entry->d_name);
        if (fd != dirfd(dir)) numbers[count++] = fd;
    }
    closedir(dir);
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && numbers[j - 1] > numbers[j]; j--) {
            int t = numbers[j];
            numbers[j] = numbers[j - 1];
            numbers[j - 1] = t;
        }
    printf("%s", label);
    for (int i = 0; i < count; i++) {
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", numbers[i]);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = 0;
        char *bracket = strstr(target, ":[");
        if (bracket) *bracket = 0;
        printf(" %d:%s", numbers[i], target);
    }
    printf("\n");
    fflush(stdout);
}

static int cmd_fds(void) {
    list_fds("start");
    int lfd;
    struct sockaddr_in addr = loopback_listener(&lfd, 0);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&addr, sizeof addr)) return 2;
    int accepted = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    int udp = socket(AF_INET6, SOCK_DGRAM, 0);
    int local = socket(AF_UNIX, SOCK_STREAM, 0);
    setsockopt(client, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    list_fds("busy");
    close(lfd);
    close(client);
    close(accepted);
    close(udp);
    close(local);
    list_fds("end");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "errno"))
        return cmd_errno(argc < 3 || strcmp(argv[2], "no-emfile"));
    if (argc >= 2 && !strcmp(argv[1], "fds")) return cmd_fds();
    if (argc >= 2 && !strcmp(argv[1], "efault")) return cmd_efault();
    fprintf(stderr, "usage: errnoprobe errno [no-emfile] | fds | efault\n");
    return 2;
}
