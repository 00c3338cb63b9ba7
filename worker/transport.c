/*
 * transport.c: streams (see transport.h): the plain-socket transport, readiness, and the
 * one non-blocking connect.
 */
#include "worker/transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <unistd.h>

static int plain_handshake(struct pt_stream *s)
{
    (void)s;
    return PT_OK;
}

static ssize_t plain_recv(struct pt_stream *s, char *buf, size_t len)
{
    ssize_t n = read(s->ev.fd, buf, len);

    if (n > 0) {
        /* A short read drained the socket: the next edge tells when more arrives, so the
         * read() that would return EAGAIN is saved.  Not after a FIN, whose edge came
         * with the data: the EOF still has to be read. */
        if ((size_t)n < len && !s->rdhup)
            s->readable = 0;
        return n;
    }
    s->readable = 0;
    if (n == 0)
        return 0;
    return errno == EAGAIN || errno == EINTR ? PT_AGAIN : PT_ERROR;
}

static ssize_t plain_send(struct pt_stream *s, const struct iovec *iov, int n)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    size_t want = 0;
    ssize_t w =
        s->more ? sendmsg(s->ev.fd, &msg, MSG_MORE | MSG_NOSIGNAL) : writev(s->ev.fd, iov, n);

    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return PT_ERROR;
        s->writable = 0;
        return PT_AGAIN;
    }
    for (int i = 0; i < n; i++)
        want += iov[i].iov_len;
    if ((size_t)w < want)
        s->writable = 0; /* the socket is full: EPOLLOUT says when it has room */
    return w;
}

static ssize_t plain_sendfile(struct pt_stream *s, int fd, int64_t off, size_t len)
{
    off_t at = (off_t)off;
    ssize_t w;

    if (len == 0)
        return 0;
    if ((w = sendfile(s->ev.fd, fd, &at, len)) < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return PT_ERROR;
        s->writable = 0;
        return PT_AGAIN;
    }
    /* A short count is a full socket, or a file that ended: the next call tells them apart
     * (EAGAIN or 0), and waiting for an edge could wait forever in the second case. */
    return w;
}

/* Nothing may be readable on an idle plain stream: an edge queued for bytes read while it
 * was busy is all that is allowed. */
static int plain_idle_check(struct pt_stream *s)
{
    char byte;

    return recv(s->ev.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN ? PT_OK
                                                                                    : PT_ERROR;
}

static void plain_nothing(struct pt_stream *s)
{
    (void)s;
}

const struct pt_transport pt_transport_plain = {
    .handshake = plain_handshake,
    .recv = plain_recv,
    .send = plain_send,
    .sendfile = plain_sendfile,
    .idle_check = plain_idle_check,
    .shutdown = plain_nothing,
    .close = plain_nothing,
};

void pt_stream_init(struct pt_stream *s, int fd, pt_event_handler handler, void *data)
{
    s->ev.fd = fd;
    s->ev.handler = handler;
    s->ev.data = data;
    s->t = &pt_transport_plain;
    s->tls = NULL;
}

void pt_stream_ready(struct pt_stream *s, unsigned events)
{
    /* A transport that waited for the other direction (a TLS write needing to read a
     * record first, or a read needing to flush one) can go on when that one is ready: no
     * edge of its own would come. */
    if (events & PT_EV_READ) {
        s->readable = 1;
        if (s->send_wants_read)
            s->writable = 1;
        s->send_wants_read = 0;
    }
    if (events & PT_EV_RDHUP)
        s->rdhup = 1;
    if (events & PT_EV_WRITE) {
        s->writable = 1;
        if (s->recv_wants_write)
            s->readable = 1;
        s->recv_wants_write = 0;
    }
}

int pt_stream_connect(struct pt_stream *s, const struct sockaddr *sa, socklen_t len)
{
    int one = 1, err;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return PT_ERROR;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->ev.fd = fd;
    s->connected = s->handshaken = 0;
    s->readable = s->writable = s->rdhup = 0;
    s->send_wants_read = s->recv_wants_write = 0;
    if (connect(fd, sa, len) == 0) {
        s->connected = 1;
        s->writable = 1;
    } else if (errno != EINPROGRESS) {
        goto failed;
    }
    if (pt_event_add(&s->ev, 0) == PT_OK)
        return PT_OK;
failed:
    err = errno;
    close(fd);
    s->ev.fd = -1;
    errno = err;
    return PT_ERROR;
}

int pt_stream_connect_done(struct pt_stream *s, unsigned events)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (s->connected)
        return PT_OK;
    if (!(events & (PT_EV_WRITE | PT_EV_ERROR)))
        return PT_AGAIN;
    if (getsockopt(s->ev.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return PT_ERROR;
    if (err) {
        errno = err;
        return PT_ERROR;
    }
    s->connected = 1;
    return PT_OK;
}

int pt_stream_handshake(struct pt_stream *s)
{
    int rc;

    if (s->handshaken)
        return PT_OK;
    rc = s->t->handshake(s);
    if (rc == PT_OK)
        s->handshaken = 1;
    return rc;
}

ssize_t pt_stream_send(struct pt_stream *s, const char *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

    return s->t->send(s, &iov, 1);
}

void pt_stream_close(struct pt_stream *s)
{
    if (s->ev.fd < 0)
        return;
    pt_timer_del(&s->timer);
    pt_event_del(&s->ev);
    s->t->close(s);
    close(s->ev.fd);
    s->ev.fd = -1;
}
