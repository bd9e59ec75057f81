/* early: a shared library whose constructor makes TCP sockets, standing for
 * any library a program links (or that is preloaded after libkeepalive)
 * whose initialisation opens a connection before libkeepalive's own
 * constructor has run. Built with -shared -fPIC; used by process_life.rs.
 *
 * Its stderr lines "early: constructor start/end" bracket the constructor,
 * so the test can see in which order the constructors ran: with
 * KEEPALIVE_DEBUG=1 libkeepalive prints its "pid N: ..." line when it loads
 * its configuration, which then falls between the two.
 *
 * EARLY_THREADS=N: N threads race their first socket() at a barrier (the
 * library's lazy initialisation), each making EARLY_SOCKETS sockets.
 * EARLY_EXPECT_IDLE: the TCP_KEEPIDLE a configured socket must show. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int expect_idle;
static int sockets_per_thread = 1;
static pthread_barrier_t start_line;

static void say(const char *text) {
    /* write(2), not stdio: nothing else in the process is set up yet. */
    if (write(2, text, strlen(text)) < 0) _exit(3);
}

/* 1 if fd has SO_KEEPALIVE on and the expected idle time. */
static int configured(int fd) {
    int on = 0, idle = 0;
    socklen_t len = sizeof on;
    if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len)) return 0;
    len = sizeof idle;
    if (getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len)) return 0;
    return on == 1 && idle == expect_idle;
}

static void *race(void *arg) {
    long ok = 0;
    (void)arg;
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < sockets_per_thread; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ok += fd >= 0 && configured(fd);
        close(fd);
    }
    return (void *)ok;
}

__attribute__((constructor)) static void early_constructor(void) {
    const char *threads_text = getenv("EARLY_THREADS");
    const char *idle_text = getenv("EARLY_EXPECT_IDLE");
    const char *per_thread_text = getenv("EARLY_SOCKETS");
    int threads = threads_text ? atoi(threads_text) : 0;
    expect_idle = idle_text ? atoi(idle_text) : 0;
    if (per_thread_text) sockets_per_thread = atoi(per_thread_text);
    say("early: constructor start\n");
    long ok = 0, total = 0;
    if (threads > 0) {
        pthread_t ids[64];
        if (threads > 64) threads = 64;
        pthread_barrier_init(&start_line, NULL, threads);
        for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, race, NULL);
        for (int i = 0; i < threads; i++) {
            void *result;
            pthread_join(ids[i], &result);
            ok += (long)result;
        }
        total = (long)threads * sockets_per_thread;
    } else {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ok = fd >= 0 && configured(fd);
        total = 1;
        close(fd);
    }
    say("early: constructor end\n");
    char line[128];
    int n = snprintf(line, sizeof line, "early sockets=%ld configured=%ld\n", total, ok);
    if (write(1, line, (size_t)n) != n) _exit(3);
}
