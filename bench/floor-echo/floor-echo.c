/*
 * The floor: the least a UDP relay must spend per datagram on this
 * machine. Each thread owns a socket bound with SO_REUSEPORT to the same
 * address, receives up to 64 datagrams per recvmmsg and sends them back
 * to their sources with one sendmmsg. Nothing else: no parsing, no
 * lookups. A TURN server moves every relayed datagram through one receive
 * and one send, as this does, so the CPU this process spends per echoed
 * datagram is what the socket layer costs a relay.
 *
 *   cc -O2 -pthread -o floor-echo floor-echo.c
 *   ./floor-echo 127.0.0.1 3490 2      # address, port, threads
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define SLOT 2048

static struct sockaddr_in listen_addr;

static int open_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1, size = 4 << 20;
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    /* Buffers as large as the servers': 4 MiB (capped by rmem_max). */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&listen_addr, sizeof listen_addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *echo(void *arg) {
    int fd = (int)(long)arg;
    static __thread char data[BATCH][SLOT];
    struct sockaddr_in from[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    for (;;) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = data[i];
            iov[i].iov_len = SLOT;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        /* Block for the first datagram, then take what is already queued. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("recvmmsg");
            return NULL;
        }
        for (int i = 0; i < n; i++) iov[i].iov_len = msgs[i].msg_len;
        int sent = 0;
        while (sent < n) {
            int r = sendmmsg(fd, msgs + sent, n - sent, 0);
            if (r < 0) {
                if (errno == EINTR) continue;
                sent++; /* a refused destination: skip it */
                continue;
            }
            sent += r;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ADDRESS PORT THREADS\n", argv[0]);
        return 2;
    }
    memset(&listen_addr, 0, sizeof listen_addr);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &listen_addr.sin_addr) != 1) {
        fprintf(stderr, "floor-echo: not an IPv4 address: %s\n", argv[1]);
        return 2;
    }
    int threads = atoi(argv[3]);
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "floor-echo: THREADS must be 1 to 64\n");
        return 2;
    }
    pthread_t ids[64];
    for (int t = 0; t < threads; t++) {
        int fd = open_socket();
        if (fd < 0) {
            perror("floor-echo: socket");
            return 1;
        }
        if (pthread_create(&ids[t], NULL, echo, (void *)(long)fd) != 0) {
            fprintf(stderr, "floor-echo: cannot start a thread\n");
            return 1;
        }
    }
    printf("floor-echo: echoing on %s:%s with %d threads\n", argv[1], argv[2], threads);
    fflush(stdout);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    return 0;
}
