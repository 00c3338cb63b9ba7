/* listen.c: binding, reusing and inheriting listening sockets. */
#include "worker/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define MAX_INHERITED 64

static int inherited[MAX_INHERITED];
static int ninherited;

void pt_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

static int parse_port(const char *s, unsigned *port)
{
    char *end;
    long v;

    if (*s == '\0')
        return PT_ERROR;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < 1 || v > 65535)
        return PT_ERROR;
    *port = (unsigned)v;
    return PT_OK;
}

int pt_listen_parse_addr(const char *s, struct pt_listen *ls)
{
    char host[128];
    const char *colon;
    unsigned port;

    memset(&ls->addr, 0, sizeof(ls->addr));
    if (s[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ls->addr;
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            return PT_ERROR;
        snprintf(host, sizeof(host), "%.*s", (int)(close - s - 1), s + 1);
        if (parse_port(close + 2, &port) != PT_OK || inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return PT_ERROR;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        ls->addrlen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ls->addr;
        colon = strrchr(s, ':');
        if (colon) {
            if ((size_t)(colon - s) >= sizeof(host))
                return PT_ERROR;
            snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
            if (strcmp(host, "*") == 0)
                strcpy(host, "0.0.0.0");
            if (strcmp(host, "localhost") == 0)
                strcpy(host, "127.0.0.1");
        } else {
            strcpy(host, "0.0.0.0");
        }
        if (parse_port(colon ? colon + 1 : s, &port) != PT_OK ||
            inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return PT_ERROR;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        ls->addrlen = sizeof(*s4);
    }
    pt_sockaddr_text((struct sockaddr *)&ls->addr, ls->text, sizeof(ls->text));
    return PT_OK;
}

static int same_addr(const struct sockaddr_storage *a, socklen_t alen,
                     const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Normalizes what getsockname returns so that it compares equal to a parsed address. */
static socklen_t bound_addr(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof(*ss);
    struct sockaddr_storage raw;

    memset(ss, 0, sizeof(*ss));
    if (getsockname(fd, (struct sockaddr *)&raw, &len) < 0)
        return 0;
    if (raw.ss_family == AF_INET) {
        struct sockaddr_in *d = (struct sockaddr_in *)ss, *s = (struct sockaddr_in *)&raw;
        d->sin_family = AF_INET;
        d->sin_port = s->sin_port;
        d->sin_addr = s->sin_addr;
        return sizeof(*d);
    }
    if (raw.ss_family == AF_INET6) {
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)ss, *s = (struct sockaddr_in6 *)&raw;
        d->sin6_family = AF_INET6;
        d->sin6_port = s->sin6_port;
        d->sin6_addr = s->sin6_addr;
        return sizeof(*d);
    }
    return 0;
}

static void add_inherited(int fd)
{
    int val = 0;
    socklen_t len = sizeof(val);

    if (ninherited == MAX_INHERITED)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &val, &len) < 0 || !val)
        return;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    /* systemd passes its sockets blocking: one accept() too many would hang a worker. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    inherited[ninherited++] = fd;
}

void pt_listen_inherit_from_env(void)
{
    const char *env = getenv("PORTIER_INHERIT");
    const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");

    if (env) {
        /* "fd;fd;..." written by the previous binary on USR2. */
        for (const char *p = env; *p;) {
            char *end;
            long fd = strtol(p, &end, 10);
            if (end == p)
                break;
            add_inherited((int)fd);
            p = *end ? end + 1 : end;
        }
    }
    if (pid && nfds && atol(pid) == (long)getpid()) {
        /* systemd socket activation: fds start at 3. */
        long n = atol(nfds);
        for (long i = 0; i < n; i++)
            add_inherited((int)(3 + i));
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
    }
}

static int take_inherited(struct pt_listen *ls)
{
    for (int i = 0; i < ninherited; i++) {
        struct sockaddr_storage ss;
        socklen_t len = bound_addr(inherited[i], &ss);
        if (inherited[i] >= 0 && same_addr(&ss, len, &ls->addr, ls->addrlen)) {
            ls->fd = inherited[i];
            inherited[i] = -1;
            return PT_OK;
        }
    }
    return PT_DECLINED;
}

static int open_one(struct pt_listen *ls, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(ls->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "socket() for %s failed: %s", ls->text, strerror(errno));
        return PT_ERROR;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ls->addr.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ls->addr, ls->addrlen) < 0 || listen(fd, ls->backlog) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", ls->text, strerror(errno));
        close(fd);
        return PT_ERROR;
    }
    ls->fd = fd;
    return PT_OK;
}

static void undo_open(struct pt_listen *head, struct pt_listen *failed)
{
    for (struct pt_listen *ls = head; ls != failed; ls = ls->next) {
        if (ls->from)
            ls->from->taken = 0;
        else
            close(ls->fd);
        ls->fd = -1;
        ls->from = NULL;
    }
}

int pt_listen_open_all(struct pt_listen *head, struct pt_listen *old, char *err, size_t errlen)
{
    for (struct pt_listen *ls = head; ls; ls = ls->next) {
        struct pt_listen *o;
        for (o = old; o; o = o->next)
            if (!o->taken && o->fd >= 0 && same_addr(&o->addr, o->addrlen, &ls->addr, ls->addrlen))
                break;
        if (o) {
            ls->fd = o->fd;
            ls->from = o;
            o->taken = 1;
            /* A new backlog takes effect without rebinding. */
            if (o->backlog != ls->backlog)
                listen(ls->fd, ls->backlog);
            continue;
        }
        if (take_inherited(ls) == PT_OK) {
            listen(ls->fd, ls->backlog);
            continue;
        }
        if (open_one(ls, err, errlen) != PT_OK) {
            undo_open(head, ls);
            return PT_ERROR;
        }
    }
    return PT_OK;
}

void pt_listen_undo(struct pt_listen *head)
{
    undo_open(head, NULL);
}

void pt_listen_close_all(struct pt_listen *head)
{
    for (struct pt_listen *ls = head; ls; ls = ls->next) {
        if (ls->fd >= 0 && !ls->taken)
            close(ls->fd);
        ls->fd = -1;
    }
}
