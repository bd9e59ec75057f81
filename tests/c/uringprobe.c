/* A client that connects through io_uring (IORING_OP_CONNECT): no
 * connect() call for any library to intercept.
 *
 *   uringprobe IPV4ADDR PORT HOLD_MS
 *
 * Prints "connected" and the options (options.h), then holds. */
#include "options.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: uringprobe IPV4ADDR PORT HOLD_MS\n");
        return 2;
    }
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &address.sin_addr) != 1)
        return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct io_uring ring;
    int err = io_uring_queue_init(4, &ring, 0);
    if (fd < 0 || err < 0) {
        fprintf(stderr, "uringprobe: socket/io_uring_queue_init: %s\n", strerror(-err));
        return 1;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&address, sizeof address);
    io_uring_submit(&ring);
    struct io_uring_cqe *cqe;
    err = io_uring_wait_cqe(&ring, &cqe);
    if (err < 0 || cqe->res < 0) {
        fprintf(stderr, "uringprobe: connect: %s\n", strerror(err < 0 ? -err : -cqe->res));
        return 1;
    }
    io_uring_cqe_seen(&ring, cqe);
    printf("connected");
    print_option_words(fd);
    printf("\n");
    fflush(stdout);
    int hold_ms = atoi(argv[3]);
    struct timespec hold = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    nanosleep(&hold, NULL);
    io_uring_queue_exit(&ring);
    return 0;
}
