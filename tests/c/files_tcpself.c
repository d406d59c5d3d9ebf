/* Connections a process makes to itself, across a restart:
 *
 *   - a TCP connection accepted from a listening socket (SO_REUSEADDR, as
 *     servers have: the connections each step accepts and closes linger on its
 *     port), TCP_NODELAY on the connecting end;
 *   - a TCP connection whose listening socket was closed after the accept;
 *   - at every moment, one connection waiting in the queue of a TCP listening
 *     socket and one in a UNIX listening socket's (each step accepts the ones
 *     the previous step made, checks who they are and sends a byte each way,
 *     then makes new ones);
 *   - a TCP connection that sent 5 bytes to a third listening socket that never
 *     accepts it: a restart cannot give those bytes back (ckpt says so);
 *   - a UNIX SOCK_SEQPACKET and a SOCK_DGRAM socket pair, 3 messages of 1 to 5
 *     bytes sent each way per step and 2 read: the messages queued must come
 *     back whole, in order, one by one.
 *
 * Each step sends 3 bytes each way on both connections and reads 2, so bytes
 * are queued in every direction at any moment, and checks that every socket
 * keeps its addresses.
 *
 * Usage: files_tcpself DIR */
#include "tick.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

struct addrs {
    struct sockaddr_in name, peer;
};

static int tcp_listener(struct sockaddr_in *a, int reuse) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof *a;
    CHECK(l >= 0 && setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == 0);
    CHECK(bind(l, (void *)a, sizeof *a) == 0 && listen(l, 8) == 0);
    CHECK(getsockname(l, (void *)a, &n) == 0);
    return l;
}

static int connect_to(int family, const void *a, socklen_t len) {
    int c = socket(family, SOCK_STREAM, 0);
    if (c < 0 || connect(c, a, len) != 0) FAIL("connect (family %d): %s", family, strerror(errno));
    return c;
}

static struct addrs addrs_of(int s) {
    struct addrs a;
    socklen_t n = sizeof a.name, m = sizeof a.peer;
    if (getsockname(s, (void *)&a.name, &n) != 0 || getpeername(s, (void *)&a.peer, &m) != 0)
        FAIL("getsockname/getpeername: %s", strerror(errno));
    return a;
}

static void same_addrs(int s, const struct addrs *was, const char *what, int step) {
    struct addrs now = addrs_of(s);
    if (now.name.sin_port != was->name.sin_port || now.peer.sin_port != was->peer.sin_port)
        FAIL("step %d: %s moved from port %d-%d to %d-%d", step, what, ntohs(was->name.sin_port),
             ntohs(was->peer.sin_port), ntohs(now.name.sin_port), ntohs(now.peer.sin_port));
}

/* Accept the connection `c` made to `l` last step; one byte each way. */
static void accept_waiting(int l, int c, int family, int step) {
    int s = accept(l, NULL, NULL);
    if (s < 0) FAIL("step %d: accept (family %d): %s", step, family, strerror(errno));
    if (family == AF_INET) {
        struct addrs a = addrs_of(s), b = addrs_of(c);
        if (a.peer.sin_port != b.name.sin_port) FAIL("step %d: accepted a connection from another socket", step);
    }
    char x = (char)step, y = 0;
    if (write(c, &x, 1) != 1 || read(s, &y, 1) != 1 || y != x) FAIL("step %d: waiting connection: no data in", step);
    if (write(s, &x, 1) != 1 || read(c, &y, 1) != 1 || y != x) FAIL("step %d: waiting connection: no data back", step);
    close(s);
    close(c);
}

/* 3 bytes each way, 2 read: the counters say what comes next. */
static void stream(int a, int b, unsigned char sent[2], unsigned char got[2], const char *what, int step) {
    int end[2] = {a, b};
    for (int d = 0; d < 2; d++) {
        unsigned char m[3] = {sent[d], (unsigned char)(sent[d] + 1), (unsigned char)(sent[d] + 2)};
        if (write(end[d], m, 3) != 3) FAIL("step %d: %s write: %s", step, what, strerror(errno));
        sent[d] += 3;
        ssize_t n = 0;
        while (n < 2) {
            ssize_t k = read(end[1 - d], m + n, 2 - n);
            if (k <= 0) FAIL("step %d: %s read: %zd %s", step, what, k, strerror(errno));
            n += k;
        }
        if (m[0] != got[d] || m[1] != (unsigned char)(got[d] + 1))
            FAIL("step %d: %s direction %d gave %d %d, want %d %d", step, what, d, m[0], m[1], got[d], got[d] + 1);
        got[d] += 2;
    }
}

/* 3 messages each way, 2 read: message k is 1 + k % 5 bytes of k. */
static void messages(int a, int b, unsigned char sent[2], unsigned char got[2], const char *what, int step) {
    int end[2] = {a, b};
    for (int d = 0; d < 2; d++) {
        unsigned char m[16];
        for (int k = 0; k < 3; k++, sent[d]++) {
            size_t len = 1 + sent[d] % 5;
            memset(m, sent[d], len);
            if (write(end[d], m, len) != (ssize_t)len) FAIL("step %d: %s write: %s", step, what, strerror(errno));
        }
        for (int k = 0; k < 2; k++, got[d]++) {
            ssize_t n = read(end[1 - d], m, sizeof m);
            size_t len = 1 + got[d] % 5;
            if (n != (ssize_t)len || m[0] != got[d] || m[len - 1] != got[d])
                FAIL("step %d: %s direction %d: a message of %zd bytes starting %d, want %zu of %d", step, what, d, n,
                     n > 0 ? m[0] : -1, len, got[d]);
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_tcpself DIR");
    int one = 1;
    struct sockaddr_in la, lb, lc;
    int l = tcp_listener(&la, 1);
    int c1 = connect_to(AF_INET, &la, sizeof la);
    int s1 = accept(l, NULL, NULL);
    CHECK(s1 >= 0 && setsockopt(c1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    int l2 = tcp_listener(&lb, 0);
    int c3 = connect_to(AF_INET, &lb, sizeof lb);
    int s3 = accept(l2, NULL, NULL);
    CHECK(s3 >= 0);
    close(l2);
    int l3 = tcp_listener(&lc, 0);
    int c4 = connect_to(AF_INET, &lc, sizeof lc);
    CHECK(write(c4, "lost!", 5) == 5);
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s/sock", argv[1]);
    unlink(un.sun_path);
    CHECK(u >= 0 && bind(u, (void *)&un, sizeof un) == 0 && listen(u, 8) == 0);
    struct addrs a1 = addrs_of(c1), b1 = addrs_of(s1), a3 = addrs_of(c3), b3 = addrs_of(s3);
    CHECK(a1.peer.sin_port == b1.name.sin_port && b1.peer.sin_port == a1.name.sin_port);
    int tcp_waiting = connect_to(AF_INET, &la, sizeof la);
    int unix_waiting = connect_to(AF_UNIX, &un, sizeof un);
    unsigned char sent1[2] = {0, 100}, got1[2] = {0, 100}, sent3[2] = {50, 150}, got3[2] = {50, 150};
    int sq[2], dg[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) == 0);
    unsigned char sentq[2] = {0, 100}, gotq[2] = {0, 100}, sentd[2] = {7, 77}, gotd[2] = {7, 77};
    ready();
    for (int i = 1; i <= 60; i++) {
        if (restarted()) say("RESTARTED at %d", i);
        same_addrs(c1, &a1, "the connecting end", i);
        same_addrs(s1, &b1, "the accepted end", i);
        same_addrs(c3, &a3, "the connecting end (listener closed)", i);
        same_addrs(s3, &b3, "the accepted end (listener closed)", i);
        int v = 0;
        socklen_t vl = sizeof v;
        if (getsockopt(c1, IPPROTO_TCP, TCP_NODELAY, &v, &vl) != 0 || !v) FAIL("step %d: TCP_NODELAY lost", i);
        accept_waiting(l, tcp_waiting, AF_INET, i);
        accept_waiting(u, unix_waiting, AF_UNIX, i);
        tcp_waiting = connect_to(AF_INET, &la, sizeof la);
        unix_waiting = connect_to(AF_UNIX, &un, sizeof un);
        stream(c1, s1, sent1, got1, "connection", i);
        stream(c3, s3, sent3, got3, "connection (listener closed)", i);
        messages(sq[0], sq[1], sentq, gotq, "seqpacket pair", i);
        messages(dg[0], dg[1], sentd, gotd, "datagram pair", i);
        say("TICK %d", i);
        pause_ms(20);
    }
    close(l3);
    say("DONE");
    return 0;
}
