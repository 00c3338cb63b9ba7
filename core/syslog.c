/* syslog.c: log lines to a syslog server over a datagram socket, nginx's way. */
#include "core/syslog.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/pt.h"
#include "core/times.h"

static const char *const facilities[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "intern", "lpr",    "news",
    "uucp",   "clock",  "authpriv", "ftp",    "ntp",    "audit",  "alert",  "cron",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7"};

static const char *const severities[] = {"emerg", "alert",  "crit", "error",
                                         "warn",  "notice", "info", "debug"};

/* The pid of this process, kept across forks by an atfork handler: a getpid() per line
 * would be a system call per line. */
static pid_t self;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void forked(void)
{
    self = getpid();
}

static void self_init(void)
{
    self = getpid();
    pthread_atfork(NULL, NULL, forked);
}

static int find_name(const char *const *names, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0)
            return (int)i;
    return -1;
}

int pt_syslog_is_target(const char *value)
{
    return strncmp(value, "syslog:", 7) == 0;
}

/* Resolves "unix:/path", "HOST", "HOST:PORT" or "[V6]:PORT" (port 514 by default) into
 * the address of <s>. */
static int parse_server(struct pt_syslog *s, const char *v, size_t len, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    char host[1024], *port = "514", *colon;
    int rc;

    if (len >= sizeof(host) || len == 0) {
        snprintf(err, errlen, "invalid syslog server \"%.*s\"", (int)len, v);
        return PT_ERROR;
    }
    memcpy(host, v, len);
    host[len] = '\0';
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;
        if (host[5] == '\0' || strlen(host + 5) >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "invalid unix socket path in syslog server \"%s\"", host);
            return PT_ERROR;
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, host + 5);
        s->addrlen = sizeof(*un);
        return PT_OK;
    }
    v = host;
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            snprintf(err, errlen, "invalid IPv6 address in syslog server \"%s\"", host);
            return PT_ERROR;
        }
        colon = end[1] == ':' ? end + 1 : NULL;
        *end = '\0';
        v = host + 1;
    } else {
        colon = strchr(host, ':');
    }
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        *colon = '\0';
        port = colon + 1;
        if (*port == '\0' || *e != '\0' || p < 1 || p > 65535) {
            snprintf(err, errlen, "invalid port \"%s\" in syslog server \"%s\"", port, s->server);
            return PT_ERROR;
        }
    }
    rc = getaddrinfo(v, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "host not found in syslog server \"%s\": %s", v, gai_strerror(rc));
        return PT_ERROR;
    }
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return PT_OK;
}

static int parse_tag(struct pt_syslog *s, const char *v, size_t len, char *err, size_t errlen)
{
    if (len > PT_SYSLOG_TAG_MAX) {
        snprintf(err, errlen, "syslog tag length exceeds %d", PT_SYSLOG_TAG_MAX);
        return PT_ERROR;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)v[i]) && v[i] != '_') {
            snprintf(err, errlen,
                     "syslog \"tag\" only allows alphanumeric characters and "
                     "underscore");
            return PT_ERROR;
        }
    }
    memcpy(s->tag, v, len);
    s->tag[len] = '\0';
    return PT_OK;
}

/* One "name=value" or "nohostname" of the parameter list. */
static int parse_param(struct pt_syslog *s, const char *p, size_t len, char *err, size_t errlen)
{
    const char *eq = memchr(p, '=', len);
    size_t nlen = eq ? (size_t)(eq - p) : len, vlen = eq ? len - nlen - 1 : 0;
    const char *v = eq ? eq + 1 : "";
    int i;

    if (nlen == 6 && strncmp(p, "server", 6) == 0 && eq) {
        snprintf(s->server, sizeof(s->server), "%.*s", (int)vlen, v);
        return parse_server(s, v, vlen, err, errlen);
    }
    if (nlen == 3 && strncmp(p, "tag", 3) == 0 && eq)
        return parse_tag(s, v, vlen, err, errlen);
    if (len == 10 && strncmp(p, "nohostname", 10) == 0) {
        s->nohostname = 1;
        return PT_OK;
    }
    if (nlen == 8 && strncmp(p, "facility", 8) == 0 && eq) {
        if ((i = find_name(facilities, pt_nelems(facilities), v, vlen)) >= 0) {
            s->facility = i;
            return PT_OK;
        }
        snprintf(err, errlen,
                 "unknown syslog facility \"%.*s\" (kern, user, mail, daemon, auth, "
                 "intern, lpr, news, uucp, clock, authpriv, ftp, ntp, audit, alert, cron, "
                 "local0 ... local7)",
                 (int)vlen, v);
        return PT_ERROR;
    }
    if (nlen == 8 && strncmp(p, "severity", 8) == 0 && eq) {
        if ((i = find_name(severities, pt_nelems(severities), v, vlen)) >= 0) {
            s->severity = i;
            return PT_OK;
        }
        snprintf(err, errlen,
                 "unknown syslog severity \"%.*s\" (emerg, alert, crit, error, "
                 "warn, notice, info, debug)",
                 (int)vlen, v);
        return PT_ERROR;
    }
    snprintf(err, errlen,
             "unknown syslog parameter \"%.*s\" (server=, facility=, severity=, "
             "tag=, nohostname)",
             (int)len, p);
    return PT_ERROR;
}

int pt_syslog_parse(struct pt_syslog *s, const char *params, const char *tag, int severity,
                    char *err, size_t errlen)
{
    const char *p = params;

    memset(s, 0, sizeof(*s));
    s->facility = 23; /* local7 */
    s->severity = severity;
    s->fd = -1;
    snprintf(s->tag, sizeof(s->tag), "%s", tag);
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (parse_param(s, p, len, err, errlen) != PT_OK)
            return PT_ERROR;
        p += len + (end != NULL);
    }
    if (s->addrlen == 0) {
        snprintf(err, errlen,
                 "no syslog server specified (add server=ADDR[:PORT] or "
                 "server=unix:/path)");
        return PT_ERROR;
    }
    return PT_OK;
}

/* The host name as nginx's cycle holds it: gethostname(), lowercased. */
static const char *hostname(void)
{
    static char name[256];

    if (name[0] == '\0' && gethostname(name, sizeof(name) - 1) == 0)
        for (char *c = name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    return name;
}

static int open_socket(struct pt_syslog *s)
{
    int fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return PT_ERROR;
    if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return PT_ERROR;
    }
    s->fd = fd;
    s->pid = self;
    return PT_OK;
}

int pt_syslog_send(struct pt_syslog *s, int severity, const char *msg, size_t len)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char head[sizeof("<255>Jan 01 00:00:00 ") + 256 + PT_SYSLOG_TAG_MAX + 2];
    time_t now = pt_time_sec();
    struct tm tm;
    struct iovec iov[2];
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    int n;

    pthread_once(&self_once, self_init);
    /* A socket inherited from the process that forked this one is its, not ours. */
    if (s->fd >= 0 && s->pid != self) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->fd < 0 && open_socket(s) != PT_OK)
        return PT_ERROR;
    localtime_r(&now, &tm);
    n = snprintf(head, sizeof(head), "<%d>%s %2d %02d:%02d:%02d %s%s%s: ",
                 s->facility * 8 + (severity < 0 ? s->severity : severity), months[tm.tm_mon],
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, s->nohostname ? "" : hostname(),
                 s->nohostname ? "" : " ", s->tag);
    iov[0] = (struct iovec){head, (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1};
    iov[1] = (struct iovec){(void *)msg, len};
    if (sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
        return PT_OK;
    /* A full socket buffer drops the line; anything else (a refused port, a listener gone)
     * closes the socket, to be opened again for the next line, as nginx does. */
    if (errno != EAGAIN) {
        int e = errno;
        close(s->fd);
        s->fd = -1;
        errno = e;
    }
    return PT_ERROR;
}

void pt_syslog_close(struct pt_syslog *s)
{
    pthread_once(&self_once, self_init);
    if (s->fd >= 0 && s->pid == self)
        close(s->fd);
    s->fd = -1;
}
