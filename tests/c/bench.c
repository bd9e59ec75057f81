/* bench: the timed loops behind scripts/bench.sh. One invocation measures
 * one variant once and prints the mean nanoseconds per operation; the script
 * runs the variants in interleaved rounds (with and without LD_PRELOAD) and
 * takes medians, because a single run on a shared machine means little.
 *
 *   bench socket ITERATIONS [OPTION=VALUE...]
 *       socket(AF_INET, SOCK_STREAM, 0) + close(). With options, the program
 *       itself sets them after socket(), exactly as libkeepalive would: this
 *       is the floor no preloaded library can beat. OPTION is one of
 *       keepalive, idle, intvl, cnt, user_timeout.
 *   bench pair ITERATIONS [OPTION=VALUE...]
 *       A loopback connection: socket() + connect() + accept() + close() of
 *       both ends. Options are set on the listener and each client socket,
 *       as the library would (accepted sockets inherit the listener's).
 *   bench pair-both ITERATIONS [OPTION=VALUE...]
 *       The same pair, with the options set on the client socket and on the
 *       accepted one (none on the listener): the calls the kernel-side mode
 *       makes, the floor of scripts/bench-bpf.sh.
 *   bench spawn ITERATIONS PROGRAM
 *       posix_spawn() + waitpid() of PROGRAM (start-up cost); the child
 *       inherits our environment, LD_PRELOAD included.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die(const char *what) {
    perror(what);
    exit(2);
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The setsockopt calls of the floor, parsed once before timing. */
struct option {
    int level, name, value;
};
static struct option options[5];
static int option_count;

static void parse_option(const char *spec) {
    static const struct { const char *key; int level, name; } known[] = {
        {"keepalive", SOL_SOCKET, SO_KEEPALIVE},
        {"idle", IPPROTO_TCP, TCP_KEEPIDLE},
        {"intvl", IPPROTO_TCP, TCP_KEEPINTVL},
        {"cnt", IPPROTO_TCP, TCP_KEEPCNT},
        {"user_timeout", IPPROTO_TCP, TCP_USER_TIMEOUT},
    };
    const char *equals = strchr(spec, '=');
    if (!equals || option_count == (int)(sizeof options / sizeof options[0])) {
        fprintf(stderr, "bench: bad option %s\n", spec);
        exit(2);
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i].key) == (size_t)(equals - spec) &&
            !strncmp(spec, known[i].key, (size_t)(equals - spec))) {
            options[option_count++] =
                (struct option){known[i].level, known[i].name, atoi(equals + 1)};
            return;
        }
    }
    fprintf(stderr, "bench: unknown option %s\n", spec);
    exit(2);
}

static void set_options(int fd) {
    for (int i = 0; i < option_count; i++) {
        if (setsockopt(fd, options[i].level, options[i].name, &options[i].value,
                       sizeof options[i].value))
            die("setsockopt");
    }
}

/* pair-both: options on both ends of each connection, none on the listener. */
static int both_ends;

/* socket() plus the floor's options, if any. */
static int tcp_socket(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    set_options(fd);
    return fd;
}

static void socket_once(void) {
    close(tcp_socket());
}

static int listener;
static struct sockaddr_in listener_addr;

static void pair_once(void) {
    int client = tcp_socket();
    if (connect(client, (struct sockaddr *)&listener_addr, sizeof listener_addr))
        die("connect");
    int server = accept(listener, NULL, NULL);
    if (server < 0) die("accept");
    if (both_ends) set_options(server);
    /* An abortive close (RST): tens of thousands of connections a minute
     * would otherwise fill TIME_WAIT and run out of ephemeral ports. The
     * same call is made with and without the library. */
    struct linger abort_close = {1, 0};
    if (setsockopt(client, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close))
        die("SO_LINGER");
    close(client);
    close(server);
}

static void start_listener(void) {
    socklen_t len = sizeof listener_addr;
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) die("socket");
    if (!both_ends) set_options(listener);
    memset(&listener_addr, 0, sizeof listener_addr);
    listener_addr.sin_family = AF_INET;
    listener_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&listener_addr, sizeof listener_addr) ||
        listen(listener, 64) ||
        getsockname(listener, (struct sockaddr *)&listener_addr, &len))
        die("listener");
}

static char *spawn_argv[2];

static void spawn_once(void) {
    pid_t pid;
    int status;
    if (posix_spawn(&pid, spawn_argv[0], NULL, NULL, spawn_argv, environ))
        die("posix_spawn");
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
        die("child");
}

/* Runs `once` a tenth as many times untimed (caches, lazy symbol binding,
 * the library's one-time set-up), then times `iterations` calls. */
static double mean_ns(void (*once)(void), long iterations) {
    for (long i = 0; i < iterations / 10 + 1; i++) once();
    double start = now_ns();
    for (long i = 0; i < iterations; i++) once();
    return (now_ns() - start) / (double)iterations;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench socket|pair|spawn ITERATIONS [...]\n");
        return 2;
    }
    long iterations = atol(argv[2]);
    if (iterations <= 0) {
        fprintf(stderr, "bench: bad iteration count %s\n", argv[2]);
        return 2;
    }
    double ns;
    if (!strcmp(argv[1], "pair-both")) {
        both_ends = 1;
        argv[1] = "pair";
    }
    if (!strcmp(argv[1], "socket") || !strcmp(argv[1], "pair"))
        for (int i = 3; i < argc; i++) parse_option(argv[i]);
    if (!strcmp(argv[1], "socket")) {
        ns = mean_ns(socket_once, iterations);
    } else if (!strcmp(argv[1], "pair")) {
        start_listener();
        ns = mean_ns(pair_once, iterations);
    } else if (!strcmp(argv[1], "spawn") && argc == 4) {
        spawn_argv[0] = argv[3];
        ns = mean_ns(spawn_once, iterations);
    } else {
        fprintf(stderr, "bench: unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("%.1f\n", ns);
    return 0;
}
