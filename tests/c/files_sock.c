/* Sockets across a restart: a listening TCP socket (127.0.0.1, an ephemeral
 * port, SO_REUSEADDR) and a listening UNIX socket (DIR/sock) accept a new
 * connection at every step, on the same address after the restart; a bound UDP
 * socket receives the datagram it sends itself; a socket pair whose other end a
 * child holds (outside the image) reads EAGAIN before and end of file after; a
 * socket pair with both ends here stays connected, with the bytes queued in
 * each direction (3 sent and 2 read per step, both ways).
 *
 * Usage: files_sock DIR */
#include "tick.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>

static void roundtrip(int lst, const struct sockaddr *a, socklen_t alen, int family, int step) {
    int c = socket(family, SOCK_STREAM, 0);
    if (c < 0 || connect(c, a, alen) != 0) FAIL("step %d: connect (family %d): %s", step, family, strerror(errno));
    int s = accept(lst, NULL, NULL);
    if (s < 0) FAIL("step %d: accept: %s", step, strerror(errno));
    char b = (char)step, g = 0;
    if (write(c, &b, 1) != 1 || read(s, &g, 1) != 1 || g != b) FAIL("step %d: no data through the connection", step);
    close(c);
    close(s);
}

int main(int argc, char **argv) {
    if (argc < 2) FAIL("usage: files_sock DIR");
    int one = 1;
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    CHECK(bind(tcp, (void *)&in, sizeof in) == 0 && listen(tcp, 8) == 0);
    socklen_t l = sizeof in;
    CHECK(getsockname(tcp, (void *)&in, &l) == 0);
    int ux = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s/sock", argv[1]);
    unlink(un.sun_path);
    CHECK(bind(ux, (void *)&un, sizeof un) == 0 && listen(ux, 8) == 0);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(udp, (void *)&ua, sizeof ua) == 0);
    l = sizeof ua;
    CHECK(getsockname(udp, (void *)&ua, &l) == 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(sv[0]);
        for (;;) pause();
    }
    close(sv[1]);
    CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
    int pair[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    unsigned char sent[2] = {0, 100}, got_[2] = {0, 100};
    ready();
    int restarts = 0;
    for (int i = 1; i <= 60; i++) {
        if (restarted()) {
            say("RESTARTED at %d", i);
            restarts++;
        }
        int v = 0;
        socklen_t vl = sizeof v;
        if (getsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &v, &vl) != 0 || !v) FAIL("step %d: SO_REUSEADDR lost", i);
        struct sockaddr_in now;
        l = sizeof now;
        if (getsockname(tcp, (void *)&now, &l) != 0 || now.sin_port != in.sin_port) FAIL("step %d: the TCP port moved", i);
        roundtrip(tcp, (void *)&in, sizeof in, AF_INET, i);
        roundtrip(ux, (void *)&un, sizeof un, AF_UNIX, i);
        char b = (char)i, g = 0;
        if (sendto(udp, &b, 1, 0, (void *)&ua, sizeof ua) != 1 || recv(udp, &g, 1, 0) != 1 || g != b)
            FAIL("step %d: UDP: %s", i, strerror(errno));
        ssize_t n = read(sv[0], &g, 1);
        if (restarts == 0 && !(n < 0 && errno == EAGAIN)) FAIL("step %d: pair: %zd %s", i, n, strerror(errno));
        if (restarts > 0 && n != 0) FAIL("step %d: pair after restart: %zd %s (want end of file)", i, n, strerror(errno));
        for (int d = 0; d < 2; d++) {
            unsigned char m[3] = {sent[d], (unsigned char)(sent[d] + 1), (unsigned char)(sent[d] + 2)};
            if (write(pair[d], m, 3) != 3) FAIL("step %d: pair write: %s", i, strerror(errno));
            sent[d] += 3;
            if (read(pair[1 - d], m, 2) != 2 || m[0] != got_[d] || m[1] != (unsigned char)(got_[d] + 1))
                FAIL("step %d: pair direction %d gave %d %d, want %d %d (%s)", i, d, m[0], m[1], got_[d], got_[d] + 1, strerror(errno));
            got_[d] += 2;
        }
        say("TICK %d", i);
        pause_ms(20);
    }
    if (!restarts) kill(child, SIGKILL);
    say("DONE");
    return 0;
}
