/*
 * var_http.c: the HTTP core's variables.  Getters return slices into the request head,
 * static strings, or copies in the request pool; none allocates otherwise.  Names and
 * meanings are nginx's.
 */
#include "worker/var_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "worker/event.h"
#include "worker/listen.h"
#include "core/pool.h"
#include "core/times.h"

/* Every getter has the pt_var_get signature; most ignore some of its arguments. */
#define GETTER(name)                                              \
    static int name(struct pt_request *r __attribute__((unused)), \
                    struct pt_str arg __attribute__((unused)),    \
                    struct pt_str *out __attribute__((unused)))

/* ---- helpers ------------------------------------------------------------------------- */

/* Sets *<out> to <v>, or declines when <v> is empty ("no value": "-" in a log). */
static int slice_or_none(struct pt_str v, struct pt_str *out)
{
    if (v.p == NULL || v.len == 0)
        return PT_DECLINED;
    *out = v;
    return PT_OK;
}

/* Formats into the request pool.  PT_OK, or PT_ERROR when out of memory. */
static int pool_printf(struct pt_request *r, struct pt_str *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int pool_printf(struct pt_request *r, struct pt_str *out, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return PT_ERROR;
    out->p = pt_pstrndup(r->pool, tmp, (size_t)n);
    out->len = (size_t)n;
    return out->p ? PT_OK : PT_ERROR;
}

static int number(struct pt_request *r, int64_t v, struct pt_str *out)
{
    return pool_printf(r, out, "%" PRId64, v);
}

/* True when header name <name> spells variable suffix <arg>: case-insensitive, with '_'
 * in the suffix standing for '-' ($http_user_agent is User-Agent). */
static int header_name_is(struct pt_str name, struct pt_str arg)
{
    if (name.len != arg.len)
        return 0;
    for (size_t i = 0; i < arg.len; i++) {
        char a = pt_lower(arg.p[i]), h = pt_lower(name.p[i]);
        if (a != h && !(a == '_' && h == '-'))
            return 0;
    }
    return 1;
}

/*
 * The request header named by <arg>: its value, or the values of all the lines with that
 * name joined by <sep> (nginx 1.23+: ", ", and "; " for Cookie).  Declines when absent.
 */
static int request_header(struct pt_request *r, struct pt_str arg, const char *sep,
                          struct pt_str *out)
{
    const struct pt_http_header *h = r->h.headers;
    size_t n = r->h.nheaders, count = 0, len = 0, seplen = strlen(sep), i;
    char *p;

    for (i = 0; i < n; i++) {
        if (!header_name_is(h[i].name, arg))
            continue;
        if (count++ == 0)
            *out = h[i].value;
        len += h[i].value.len + seplen;
    }
    if (count <= 1)
        return count ? PT_OK : PT_DECLINED;
    p = pt_palloc(r->pool, len);
    if (p == NULL)
        return PT_ERROR;
    out->p = p;
    for (i = 0, len = 0; i < n; i++) {
        if (!header_name_is(h[i].name, arg))
            continue;
        if (len) {
            memcpy(p + len, sep, seplen);
            len += seplen;
        }
        memcpy(p + len, h[i].value.p, h[i].value.len);
        len += h[i].value.len;
    }
    out->len = len;
    return PT_OK;
}

static struct pt_str trim_spaces(struct pt_str s)
{
    while (s.len && (s.p[0] == ' ' || s.p[0] == '\t'))
        s.p++, s.len--;
    while (s.len && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Splits the next element delimited by <delim> off <*rest>.  Returns 0 when exhausted. */
static int next_element(struct pt_str *rest, char delim, struct pt_str *elem)
{
    const char *d;

    if (rest->p == NULL)
        return 0;
    d = memchr(rest->p, delim, rest->len);
    elem->p = rest->p;
    elem->len = d ? (size_t)(d - rest->p) : rest->len;
    if (d)
        *rest = (struct pt_str){d + 1, rest->len - elem->len - 1};
    else
        *rest = PT_NULL_STR;
    return 1;
}

/*
 * Finds key <key> in the <delim>-separated "key=value" list <list> (case-insensitive key,
 * first match, value raw).  A key without '=' has the empty value.  PT_OK or PT_DECLINED.
 */
static int list_value(struct pt_str list, char delim, struct pt_str key, struct pt_str *out)
{
    struct pt_str e;

    while (next_element(&list, delim, &e)) {
        const char *eq;
        struct pt_str k;
        e = delim == ';' ? trim_spaces(e) : e;
        eq = memchr(e.p, '=', e.len);
        k = (struct pt_str){e.p, eq ? (size_t)(eq - e.p) : e.len};
        if (k.len != key.len || strncasecmp(k.p, key.p, key.len) != 0)
            continue;
        *out = eq ? (struct pt_str){eq + 1, e.len - k.len - 1} : (struct pt_str){e.p + e.len, 0};
        return PT_OK;
    }
    return PT_DECLINED;
}

static struct pt_http_srv_conf *srv_conf(struct pt_request *r)
{
    return r->srv_conf ? r->srv_conf[pt_http_module.index] : NULL;
}

/* ---- the request ----------------------------------------------------------------------- */

GETTER(var_host)
{
    struct pt_str h = r->h.host;
    struct pt_http_srv_conf *sc;
    char *low;

    /* Drop the port (after the ']' of an IPv6 literal) and a trailing dot. */
    if (h.len && h.p[0] == '[') {
        const char *end = memchr(h.p, ']', h.len);
        h.len = end ? (size_t)(end - h.p) + 1 : h.len;
    } else {
        const char *colon = h.len ? memchr(h.p, ':', h.len) : NULL;
        h.len = colon ? (size_t)(colon - h.p) : h.len;
    }
    if (h.len && h.p[h.len - 1] == '.')
        h.len--;
    if (h.len == 0) {
        sc = srv_conf(r);
        *out = pt_str_c(sc && sc->server_name ? sc->server_name : "");
        return PT_OK;
    }
    for (size_t i = 0; i < h.len; i++) {
        if (pt_lower(h.p[i]) == h.p[i])
            continue;
        /* Upper case seen: copy lower-cased (rare; the slice is used as is otherwise). */
        if ((low = pt_pstrndup(r->pool, h.p, h.len)) == NULL)
            return PT_ERROR;
        for (size_t j = i; j < h.len; j++)
            low[j] = pt_lower(low[j]);
        h.p = low;
        break;
    }
    *out = h;
    return PT_OK;
}

GETTER(var_uri)
{
    return slice_or_none(r->uri, out);
}

GETTER(var_request_uri)
{
    return slice_or_none(r->h.target, out);
}

GETTER(var_args)
{
    return slice_or_none(r->args, out);
}

GETTER(var_is_args)
{
    *out = r->args.len ? PT_STR("?") : PT_STR("");
    return PT_OK;
}

GETTER(var_arg)
{
    return list_value(r->args, '&', arg, out);
}

GETTER(var_http)
{
    /* Several Cookie lines are one list of pairs: join them the way a Cookie line would. */
    return request_header(r, arg, header_name_is(PT_STR("cookie"), arg) ? "; " : ", ", out);
}

GETTER(var_cookie)
{
    const struct pt_http_header *h = r->h.headers;

    for (size_t i = 0; i < r->h.nheaders; i++)
        if (pt_str_ieq(h[i].name, "cookie") && list_value(h[i].value, ';', arg, out) == PT_OK)
            return PT_OK;
    return PT_DECLINED;
}

GETTER(var_request_method)
{
    return slice_or_none(r->h.method, out);
}

GETTER(var_server_protocol)
{
    /* As sent, like nginx's: "HTTP/1.2", handled as 1.1, still reads "HTTP/1.2". */
    return slice_or_none(r->h.protocol, out);
}

GETTER(var_request)
{
    struct pt_str m = r->h.method, t = r->h.target, v;
    char *p;

    if (m.len == 0 || t.len == 0 || var_server_protocol(r, arg, &v) != PT_OK)
        return PT_DECLINED;
    /* Rebuilt rather than sliced from the buffer: the line is short, and the copy does not
     * depend on how the parser laid the head out. */
    out->len = m.len + 1 + t.len + 1 + v.len;
    if ((p = pt_palloc(r->pool, out->len)) == NULL)
        return PT_ERROR;
    memcpy(p, m.p, m.len);
    p[m.len] = ' ';
    memcpy(p + m.len + 1, t.p, t.len);
    p[m.len + 1 + t.len] = ' ';
    memcpy(p + m.len + 2 + t.len, v.p, v.len);
    out->p = p;
    return PT_OK;
}

GETTER(var_content_length)
{
    return request_header(r, PT_STR("content_length"), ", ", out);
}

GETTER(var_content_type)
{
    return request_header(r, PT_STR("content_type"), ", ", out);
}

GETTER(var_request_id)
{
    *out = pt_str_c(pt_request_id(r));
    return PT_OK;
}

/* ---- the connection ------------------------------------------------------------------ */

GETTER(var_remote_addr)
{
    return slice_or_none(pt_str_c(r->c->peer_text), out);
}

/* nginx's $binary_remote_addr: the client's address in network order, 4 bytes for IPv4 and
 * 16 for IPv6 (a v4-mapped peer included), the compact key of limit_req_zone and
 * limit_conn_zone. */
GETTER(var_binary_remote_addr)
{
    const union pt_sockaddr *sa = &r->c->peer;

    if (sa->sa.sa_family == AF_INET6)
        *out = (struct pt_str){(const char *)&sa->sin6.sin6_addr, 16};
    else if (sa->sa.sa_family == AF_INET)
        *out = (struct pt_str){(const char *)&sa->sin.sin_addr, 4};
    else
        return PT_DECLINED;
    return PT_OK;
}

GETTER(var_remote_port)
{
    return number(r, r->c->peer_port, out);
}

GETTER(var_remote_user)
{
    return PT_DECLINED; /* no authentication module yet */
}

GETTER(var_scheme)
{
    *out = r->c->ls->ssl ? PT_STR("https") : PT_STR("http");
    return PT_OK;
}

GETTER(var_https)
{
    *out = r->c->ls->ssl ? PT_STR("on") : PT_STR("");
    return PT_OK;
}

GETTER(var_server_name)
{
    struct pt_http_srv_conf *sc = srv_conf(r);

    *out = pt_str_c(sc && sc->server_name ? sc->server_name : "");
    return PT_OK;
}

/* Splits the listener's text "ip:port" / "[v6]:port" into address and port. */
static int listen_parts(struct pt_request *r, struct pt_str *addr, struct pt_str *port)
{
    const char *text = r->c->ls ? r->c->ls->text : "", *colon = strrchr(text, ':');

    if (colon == NULL)
        return PT_DECLINED;
    *addr = (struct pt_str){text, (size_t)(colon - text)};
    *port = pt_str_c(colon + 1);
    if (addr->len >= 2 && addr->p[0] == '[') {
        addr->p++;
        addr->len -= 2;
    }
    return PT_OK;
}

GETTER(var_server_addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct pt_str port;
    char buf[INET6_ADDRSTRLEN];
    const void *a;

    if (listen_parts(r, out, &port) != PT_OK)
        return PT_DECLINED;
    if (!pt_str_eq(*out, "0.0.0.0") && !pt_str_eq(*out, "::"))
        return PT_OK;
    /* A wildcard listener: the address is the one this connection reached. */
    if (getsockname(r->c->s.ev.fd, (struct sockaddr *)&ss, &len) != 0)
        return PT_OK;
    a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                 : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (inet_ntop(ss.ss_family, a, buf, sizeof(buf)) == NULL)
        return PT_OK;
    out->p = pt_pstrdup(r->pool, buf);
    out->len = strlen(buf);
    return out->p ? PT_OK : PT_ERROR;
}

GETTER(var_server_port)
{
    struct pt_str addr;

    return listen_parts(r, &addr, out);
}

GETTER(var_connection_requests)
{
    return number(r, r->c->nrequests, out);
}

/* nginx's $request_length: the bytes the request took on the wire, its head (request line
 * and fields) and its body as read so far, chunk framing included. */
GETTER(var_request_length)
{
    return number(r, (int64_t)r->h.head_len + r->body_received + r->body_framing, out);
}

/* ---- the response ---------------------------------------------------------------------- */

GETTER(var_status)
{
    /* nginx prints "000" when no status was set (the client left first). */
    return pool_printf(r, out, "%03d", r->status > 0 && r->status < 1000 ? r->status : 0);
}

GETTER(var_body_bytes_sent)
{
    return number(r, r->body_bytes_sent, out);
}

GETTER(var_bytes_sent)
{
    return number(r, r->bytes_sent, out);
}

GETTER(var_sent_http)
{
    for (int i = 0; i < r->out.n; i++) {
        if (header_name_is(r->out.h[i].name, arg)) {
            *out = r->out.h[i].value;
            return PT_OK;
        }
    }
    return PT_DECLINED;
}

/* <ms> as nginx logs a time, "S.mmm" ("-" when negative: not reached), into <t> (room for
 * 24 bytes); returns the length.  By hand: snprintf here was a percent of a proxied
 * request's CPU. */
static size_t format_ms(char *t, int64_t ms)
{
    size_t n;
    unsigned frac;

    if (ms < 0) {
        t[0] = '-';
        return 1;
    }
    frac = (unsigned)(ms % 1000);
    n = pt_format_uint(t, (uint64_t)ms / 1000, 10);
    t[n++] = '.';
    t[n++] = (char)('0' + frac / 100);
    t[n++] = (char)('0' + frac / 10 % 10);
    t[n++] = (char)('0' + frac % 10);
    return n;
}

/* The fields of a try the $upstream_* lists show. */
enum up_field { UP_ADDR, UP_STATUS, UP_RESPONSE, UP_CONNECT, UP_HEADER, UP_SENT, UP_RECEIVED };

/* One try's <f> into <t> (room for 24 bytes, or the address itself); its length. */
static size_t up_entry(const struct pt_upstream_try *try, enum up_field f, char *t, const char **s)
{
    *s = t;
    switch (f) {
    case UP_ADDR: *s = try->addr; return strlen(try->addr);
    case UP_STATUS:
        if (try->status == 0) {
            t[0] = '-';
            return 1;
        }
        return pt_format_uint(t, (uint64_t)try->status, 10);
    case UP_RESPONSE: return format_ms(t, try->response_ms);
    case UP_CONNECT: return format_ms(t, try->connect_ms);
    case UP_HEADER: return format_ms(t, try->header_ms);
    case UP_SENT: return pt_format_uint(t, try->sent, 10);
    case UP_RECEIVED: return pt_format_uint(t, try->received, 10);
    }
    return 0;
}

/* nginx's $upstream_* list of <f>, formatted when asked: each try's entry, joined by ", ";
 * "-" in a log when no upstream was asked (and for the status when none came). */
static int upstream_list(struct pt_request *r, enum up_field f, struct pt_str *out)
{
    const struct pt_upstream_log *up = &r->up;
    size_t len = 0, n;
    const char *s;
    char t[24], *p;
    int any = f != UP_STATUS;

    for (int i = 0; i < up->n; i++) {
        len += up_entry(&up->tries[i], f, t, &s) + 2;
        any |= up->tries[i].status != 0;
    }
    if (up->n == 0 || !any || (p = pt_pnalloc(r->pool, len)) == NULL)
        return PT_DECLINED;
    out->p = p;
    for (int i = 0; i < up->n; i++) {
        if (i) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        n = up_entry(&up->tries[i], f, t, &s);
        memcpy(p, s, n);
        p += n;
    }
    out->len = (size_t)(p - out->p);
    return PT_OK;
}

#define UPSTREAM_GETTER(name, field)         \
    GETTER(name)                             \
    {                                        \
        return upstream_list(r, field, out); \
    }

UPSTREAM_GETTER(var_upstream_addr, UP_ADDR)
UPSTREAM_GETTER(var_upstream_status, UP_STATUS)
UPSTREAM_GETTER(var_upstream_response_time, UP_RESPONSE)
UPSTREAM_GETTER(var_upstream_connect_time, UP_CONNECT)
UPSTREAM_GETTER(var_upstream_header_time, UP_HEADER)
UPSTREAM_GETTER(var_upstream_bytes_sent, UP_SENT)
UPSTREAM_GETTER(var_upstream_bytes_received, UP_RECEIVED)

/* ---- time -------------------------------------------------------------------------------- */

GETTER(var_request_time)
{
    uint64_t now = pt_now_ms(), ms = now > r->start_ms ? now - r->start_ms : 0;

    return pool_printf(r, out, "%" PRIu64 ".%03u", ms / 1000, (unsigned)(ms % 1000));
}

GETTER(var_msec)
{
    int64_t ms = pt_time_wall_ms();

    return pool_printf(r, out, "%lld.%03d", (long long)(ms / 1000), (int)(ms % 1000));
}

enum time_format { TIME_LOCAL, TIME_ISO8601 };

/*
 * Formats the current second in local time as <fmt>.  localtime_r and the formatting are
 * done once per second per format: a busy log asks for the same second many times.
 */
static int time_var(struct pt_request *r, enum time_format fmt, struct pt_str *out)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static time_t cached[2] = {-1, -1};
    static char text[2][40];
    static size_t len[2];
    time_t now = pt_time_sec();
    struct tm tm;
    long off;
    char sign;

    if (now != cached[fmt]) {
        localtime_r(&now, &tm);
        off = tm.tm_gmtoff / 60;
        sign = off < 0 ? '-' : '+';
        off = off < 0 ? -off : off;
        if (fmt == TIME_LOCAL)
            len[fmt] = (size_t)snprintf(text[fmt], sizeof(text[fmt]),
                                        "%02d/%s/%d:%02d:%02d:%02d %c%02ld%02ld", tm.tm_mday,
                                        months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                                        tm.tm_sec, sign, off / 60, off % 60);
        else
            len[fmt] = (size_t)snprintf(text[fmt], sizeof(text[fmt]),
                                        "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld",
                                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                        tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
        cached[fmt] = now;
    }
    /* Copied: the cache changes next second, the value must last the request. */
    out->p = pt_pstrndup(r->pool, text[fmt], len[fmt]);
    out->len = len[fmt];
    return out->p ? PT_OK : PT_ERROR;
}

GETTER(var_time_local)
{
    return time_var(r, TIME_LOCAL, out);
}

GETTER(var_time_iso8601)
{
    return time_var(r, TIME_ISO8601, out);
}

/* ---- request ids --------------------------------------------------------------------- */

/* xoshiro256** (Blackman and Vigna): fast, 256 bits of state, fine for unique ids. */
static uint64_t rng_state[4];
/* Seeded in this process: a fork clears it (rng_forked), so that each worker draws its own
 * sequence without a getpid() system call per draw. */
static int rng_ready;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t *s = rng_state, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* splitmix64, to spread a weak fallback seed over the whole state. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_forked(void)
{
    rng_ready = 0;
}

static void rng_seed(void)
{
    static int atfork;
    pid_t pid = getpid();
    uint64_t x;

    if (!atfork)
        atfork = pthread_atfork(NULL, NULL, rng_forked) == 0;
    rng_ready = 1;
    if (getrandom(rng_state, sizeof(rng_state), GRND_NONBLOCK) == (ssize_t)sizeof(rng_state) &&
        (rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3]))
        return;
    /* Without getrandom: the clocks (ms), the pid and where the stack lies (ASLR). */
    x = (uint64_t)pt_time_wall_ms() ^ (pt_now_ms() << 24) ^ ((uint64_t)pid << 40) ^
        (uint64_t)(uintptr_t)&x;
    for (int i = 0; i < 4; i++)
        rng_state[i] = splitmix(&x);
}

void pt_random_hex(char *dst, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    static char pairs[256][2]; /* a byte's two digits: half the steps of a digit at a time */
    uint64_t v = 0;

    /* Workers are forked from the master: each must draw from its own sequence, or two
     * workers would hand out the same ids. */
    if (!rng_ready)
        rng_seed();
    if (pairs[0][0] == '\0')
        for (int b = 0; b < 256; b++)
            pairs[b][0] = hex[b >> 4], pairs[b][1] = hex[b & 15];
    for (size_t i = 0; i + 1 < n; i += 2, v >>= 8) {
        if (i % 16 == 0)
            v = rng_next();
        memcpy(dst + i, pairs[v & 0xff], 2);
    }
    if (n % 2)
        dst[n - 1] = hex[rng_next() & 15];
}

/* An incoming id portier keeps: 1 to 128 bytes of letters, digits and "-_.:+/=@" (UUIDs,
 * hex, base64, Heroku's and AWS's ids), nothing that would need escaping in a log line, a
 * field or the HTML of an error page. */
#define REQUEST_ID_MAX 128

static int id_sane(struct pt_str v)
{
    if (v.len == 0 || v.len > REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < v.len; i++)
        if (!isalnum((unsigned char)v.p[i]) && strchr("-_.:+/=@", v.p[i]) == NULL)
            return 0;
    return 1;
}

/* The id a trusted proxy sent in the request_id_header field (exactly one such field, its
 * value sane), else PT_NULL_STR. */
static struct pt_str incoming_id(struct pt_request *r)
{
    const struct pt_http_loc_conf *lc = r->loc_conf ? pt_http_loc_conf(r, pt_http_module) : NULL;
    struct pt_str name, found = PT_NULL_STR;
    int count = 0;

    if (lc == NULL || lc->request_id_header.len == 0 || !pt_http_peer_trusted(r))
        return PT_NULL_STR;
    name = lc->request_id_header;
    for (size_t i = 0; i < r->h.nheaders; i++) {
        struct pt_str n = r->h.headers[i].name;
        if (pt_str_ieq_str(n, name) && count++ == 0)
            found = r->h.headers[i].value;
    }
    return count == 1 && id_sane(found) ? found : PT_NULL_STR;
}

const char *pt_request_id(struct pt_request *r)
{
    static char spare[33]; /* when the pool fails: the id must not, and lasts the request */
    struct pt_str in;
    char *id;

    if (r->request_id)
        return r->request_id;
    in = incoming_id(r);
    if (in.len) {
        r->request_id = pt_pstrndup(r->pool, in.p, in.len);
        if (r->request_id)
            return r->request_id;
    }
    id = pt_pnalloc(r->pool, 33);
    id = id ? id : spare;
    pt_random_hex(id, 32);
    id[32] = '\0';
    r->request_id = id;
    return id;
}

/* ---- registration ---------------------------------------------------------------------- */

static const struct {
    const char *name;
    int prefix;
    pt_var_get get;
} http_vars[] = {
    {"host", 0, var_host},
    {"uri", 0, var_uri},
    {"document_uri", 0, var_uri},
    {"request_uri", 0, var_request_uri},
    {"args", 0, var_args},
    {"query_string", 0, var_args},
    {"is_args", 0, var_is_args},
    {"arg_", 1, var_arg},
    {"http_", 1, var_http},
    {"cookie_", 1, var_cookie},
    {"sent_http_", 1, var_sent_http},
    {"remote_addr", 0, var_remote_addr},
    {"binary_remote_addr", 0, var_binary_remote_addr},
    {"remote_port", 0, var_remote_port},
    {"remote_user", 0, var_remote_user},
    {"scheme", 0, var_scheme},
    {"https", 0, var_https},
    {"request_method", 0, var_request_method},
    {"request", 0, var_request},
    {"server_protocol", 0, var_server_protocol},
    {"server_name", 0, var_server_name},
    {"server_addr", 0, var_server_addr},
    {"server_port", 0, var_server_port},
    {"status", 0, var_status},
    {"body_bytes_sent", 0, var_body_bytes_sent},
    {"bytes_sent", 0, var_bytes_sent},
    {"request_time", 0, var_request_time},
    {"msec", 0, var_msec},
    {"time_local", 0, var_time_local},
    {"time_iso8601", 0, var_time_iso8601},
    {"request_id", 0, var_request_id},
    {"upstream_addr", 0, var_upstream_addr},
    {"upstream_status", 0, var_upstream_status},
    {"upstream_response_time", 0, var_upstream_response_time},
    {"upstream_connect_time", 0, var_upstream_connect_time},
    {"upstream_header_time", 0, var_upstream_header_time},
    {"upstream_bytes_sent", 0, var_upstream_bytes_sent},
    {"upstream_bytes_received", 0, var_upstream_bytes_received},
    {"request_length", 0, var_request_length},
    {"connection_requests", 0, var_connection_requests},
    {"content_length", 0, var_content_length},
    {"content_type", 0, var_content_type},
};

int pt_http_vars_register(void)
{
    for (size_t i = 0; i < pt_nelems(http_vars); i++)
        if (pt_var_register(http_vars[i].name, http_vars[i].prefix, http_vars[i].get) != PT_OK)
            return PT_ERROR;
    return PT_OK;
}
