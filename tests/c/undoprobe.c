/* Programs on which the library must undo what it set, in hard places.
 *
 *   undoprobe seccomp      a daemon that sandboxes itself (a seccomp filter
 *                          killing the process on open/openat), then
 *                          switches keepalive off on its socket
 *   undoprobe chroot DIR   a daemon that chroots into DIR (no /proc there),
 *                          then switches keepalive off
 *   undoprobe listenfail   a socket with the program's own SO_KEEPALIVE=1
 *                          and TCP_KEEPIDLE=30 whose listen() fails
 *                          (EADDRINUSE: another socket listens on its port)
 *
 * Each prints "LABEL keepalive=... user_timeout=..." (options.h) after the
 * step, and exits 0. For issue 22. */
#define _GNU_SOURCE
#include "options.h"

#include <arpa/inet.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void set_int(int fd, int level, int name, int value, const char *what) {
    check(setsockopt(fd, level, name, &value, sizeof value) == 0, what);
}

/* From here on, open() or openat() kills the process (SIGSYS). */
static void forbid_opening_files(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0, "seccomp");
}

static int listen_fails(void) {
    int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
    check(a >= 0 && b >= 0, "socket");
    set_int(a, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    set_int(b, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof address;
    check(bind(a, (struct sockaddr *)&address, sizeof address) == 0, "bind a");
    check(getsockname(a, (struct sockaddr *)&address, &len) == 0, "getsockname");
    check(bind(b, (struct sockaddr *)&address, sizeof address) == 0, "bind b");
    check(listen(a, 1) == 0, "listen a");
    set_int(b, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    set_int(b, IPPROTO_TCP, TCP_KEEPIDLE, 30, "TCP_KEEPIDLE");
    errno = 0;
    int rc = listen(b, 1);
    printf("listen rc=%d errno=%d\n", rc, errno);
    report_socket("after-failed-listen", b);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "listenfail")) return listen_fails();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    check(fd >= 0, "socket");
    if (argc >= 2 && !strcmp(argv[1], "seccomp")) {
        forbid_opening_files();
    } else if (argc >= 3 && !strcmp(argv[1], "chroot")) {
        check(chroot(argv[2]) == 0 && chdir("/") == 0, "chroot");
    } else {
        fprintf(stderr, "usage: undoprobe seccomp | chroot DIR | listenfail\n");
        return 2;
    }
    set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0, "SO_KEEPALIVE=0");
    report_socket("after-keepalive-off", fd);
    return 0;
}
