/* cancelprobe: a thread cancelled (pthread_cancel) while blocked in a call
 * that the library wraps (tests/reliability.rs). glibc cancels by a forced
 * unwind through the thread's frames, our hook's among them.
 *
 *   cancelprobe CALL   CALL is accept, accept4, connect or fcntl-setlkw
 *
 * The thread blocks in CALL, with a cleanup handler pushed; the main thread
 * waits until /proc shows it inside that system call, cancels and joins it,
 * then prints
 *   CALL joined=canceled cleanup=1
 * and, to show the program (and the library) carry on normally, a fresh
 * connection to the same listener:
 *   client keepalive=... / accepted keepalive=...
 * With connect, the cleanup handler also prints the connecting socket:
 *   connecting keepalive=... */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "options.h"

static const char *call;
static struct sockaddr_in addr;
static int lfd, connecting_fd = -1, lock_fd = -1;
static atomic_int tid, cleaned_up, made_fd = -1;

static void cleanup(void *arg) {
    (void)arg;
    if (connecting_fd >= 0) {
        report_socket("connecting", connecting_fd);
        close(connecting_fd); /* through our hook, in the middle of the unwind */
    }
    if (made_fd >= 0) printf("socket returned fd=%d\n", (int)made_fd);
    cleaned_up = 1;
}

static void *blocked(void *arg) {
    (void)arg;
    pthread_cleanup_push(cleanup, NULL);
    tid = gettid();
    if (!strcmp(call, "pending-socket")) {
        /* Cancelled before a call that is no cancellation point: it must
         * return, and the cancellation wait for the next real one. */
        pthread_cancel(pthread_self());
        made_fd = socket(AF_INET, SOCK_STREAM, 0);
        pthread_testcancel();
    } else if (!strcmp(call, "accept")) {
        accept(lfd, NULL, NULL);
    } else if (!strcmp(call, "accept4")) {
        accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    } else if (!strcmp(call, "connect")) {
        connect(connecting_fd, (struct sockaddr *)&addr, sizeof addr);
    } else {
        struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        fcntl(lock_fd, F_OFD_SETLKW, &lock);
    }
    pthread_cleanup_pop(0);
    printf("%s returned instead of being cancelled\n", call);
    exit(3);
    return NULL;
}

/* The system call the thread is in, from /proc (-1 when running). */
static long current_syscall(void) {
    char path[64], text[256] = "";
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *file = fopen(path, "r");
    if (!file) return -1;
    long number = -1;
    if (fgets(text, sizeof text, file)) number = strtol(text, NULL, 10);
    fclose(file);
    return number;
}

static int is_expected(long number) {
    if (!strcmp(call, "accept") || !strcmp(call, "accept4")) {
#ifdef SYS_accept
        if (number == SYS_accept) return 1;
#endif
        return number == SYS_accept4;
    }
    if (!strcmp(call, "connect")) return number == SYS_connect;
    return number == SYS_fcntl;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 2) {
        fprintf(stderr, "usage: cancelprobe accept|accept4|connect|fcntl-setlkw\n");
        return 2;
    }
    call = argv[1];
    /* A loopback listener; its backlog of 0 holds one connection. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    check(bind(lfd, (struct sockaddr *)&addr, sizeof addr) == 0, "bind");
    check(listen(lfd, 0) == 0, "listen");
    check(getsockname(lfd, (struct sockaddr *)&addr, &len) == 0, "getsockname");
    int filler = -1;
    if (!strcmp(call, "connect")) {
        /* The backlog full: the next SYN is dropped, connect() waits. */
        filler = socket(AF_INET, SOCK_STREAM, 0);
        check(connect(filler, (struct sockaddr *)&addr, sizeof addr) == 0, "filler");
        connecting_fd = socket(AF_INET, SOCK_STREAM, 0);
    } else if (!strcmp(call, "fcntl-setlkw")) {
        /* Two open file descriptions of one file: their OFD locks conflict
         * within one process. */
        char name[] = "/tmp/cancelprobe.XXXXXX";
        int holder = mkstemp(name);
        check(holder >= 0, "mkstemp");
        lock_fd = open(name, O_RDWR);
        check(lock_fd >= 0, "open");
        unlink(name);
        struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        check(fcntl(holder, F_OFD_SETLK, &lock) == 0, "lock");
    } else if (strcmp(call, "accept") && strcmp(call, "accept4") &&
               strcmp(call, "pending-socket")) {
        fprintf(stderr, "unknown call %s\n", call);
        return 2;
    }

    pthread_t thread;
    check(pthread_create(&thread, NULL, blocked, NULL) == 0, "pthread_create");
    /* Cancelled only once really blocked in the system call (10 s at most). */
    int waits = 0;
    while (strcmp(call, "pending-socket") && (!tid || !is_expected(current_syscall()))) {
        check(++waits < 10000, "the thread never blocked in its call");
        usleep(1000);
    }
    check(pthread_cancel(thread) == 0, "pthread_cancel");
    void *result = NULL;
    check(pthread_join(thread, &result) == 0, "pthread_join");
    printf("%s joined=%s cleanup=%d\n", call, result == PTHREAD_CANCELED ? "canceled" : "other",
           (int)cleaned_up);

    /* Life goes on: a new connection through the same listener. */
    if (filler >= 0) check(accept(lfd, NULL, NULL) >= 0, "accept the filler");
    int client = socket(AF_INET, SOCK_STREAM, 0);
    check(connect(client, (struct sockaddr *)&addr, sizeof addr) == 0, "connect");
    int accepted = accept(lfd, NULL, NULL);
    check(accepted >= 0, "accept");
    report_socket("client", client);
    report_socket("accepted", accepted);
    return 0;
}
