/*
 * backend.c: pt-backend, the small HTTP/1.1 origin server that stands behind portier in the
 * demo, the integration tests and the benchmark.
 *
 * Usage: pt-backend [--listen HOST:PORT] [--name NAME] [--fail MODE] [--once]
 *   --listen   where to listen (PORT 0 = ephemeral; default 127.0.0.1:0)
 *   --name     the X-Backend value (default "backend")
 *   --fail     fail every request, once it was read whole (head and body), whatever its
 *              path: MODE is a status code (answers it, body "status N\n"), "reset"
 *              (closes with a TCP RST), "close" (closes with a FIN, no answer) or "hang"
 *              (never answers).  A proxy's retries are tested against it.
 *   --once     answers the first request of each connection normally (and keeps the
 *              connection), then closes the connection without an answer on the next one:
 *              a kept-alive connection the server gave up on just as it was reused.
 * Once listening it prints "READY <port>\n" on stdout.  SIGTERM or SIGINT stop it cleanly.
 *
 * One process, one level-triggered epoll loop, non-blocking sockets, keepalive and
 * pipelining.  Every response carries "X-Backend: NAME".  The endpoint is chosen by the last
 * segment of the path, so /echo and /api/echo are both echo: a test sees what path a proxy
 * forwarded.  Anything unknown is the hello endpoint, the benchmark's request.
 *
 *   /          200 "hello from NAME\n"
 *   /echo      the request head exactly as received, then the decoded body;
 *              X-Received-Body-Length: N, X-Received-Chunked: 0|1
 *   /bytes     ?n=N[&chunked=1][&chunk=SIZE]: N bytes, byte i = 'a' + i % 26, streamed as
 *              the client reads them; chunks of SIZE bytes (16384, at most 65536)
 *   /sink      discards the body: "received N bytes\n", and the two X-Received-* headers
 *   /slow      ?ms=N: the hello response, N ms later
 *   /drip      ?n=K&ms=M: chunked, "chunk i\n" for i = 0..K-1: chunk 0 with the head, then
 *              one every M ms
 *   /sse       ?n=K&ms=M: like /drip with server-sent events: Content-Type
 *              text/event-stream, "data: event i\n\n" for i = 0..K-1
 *   /status    ?code=N: status N, body "status N\n" (no body for 1xx, 204, 304)
 *   /headers   ?name=value&...: the hello response with those headers added (but for
 *              "type", see below)
 *   /close     the hello response with "Connection: close", then a lingering close
 *   /reset     closes with a TCP RST, without answering
 *   /hang      reads the request (and anything after it) and never answers
 *   /ws        WebSocket echo (RFC 6455): data frames echoed unmasked, ping -> pong,
 *              close -> close
 *   /count     "requests=N connections=M\n", this request and connection included
 *
 * Every endpoint takes ?type=T (percent-decoded, at most 127 bytes): the response's
 * Content-Type is T instead of its usual one, e.g. /bytes?n=1000&type=text/html.
 */
#ifndef _GNU_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memrchr, accept4; the build may define it already */
#endif
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../core/pt.h"

#define IN_INIT       (16 * 1024)  /* input buffer of a new connection */
#define IN_MAX        (64 * 1024)  /* a request head must fit in this */
#define OUT_HIGH      (256 * 1024) /* above this much unsent output, stop reading and producing */
#define BUF_KEEP      (64 * 1024)  /* an emptied buffer larger than this is given back */
#define ECHO_MAX      (64u << 20)  /* largest body /echo returns */
#define LINE_MAX      4096         /* longest chunk-size or trailer line */
#define LINGER_MS     2000         /* how long a closing connection waits for the client's FIN */
#define PIECE         (64 * 1024)  /* /bytes produces this much at a time without chunking */
#define CHUNK_DEFAULT 16384
#define CHUNK_MAX     PIECE
#define CHUNKED       (-1) /* put_head(): chunked framing */
#define NO_BODY       (-2) /* put_head(): no body and no Content-Length */

enum state { ST_HEAD, ST_BODY, ST_WAIT, ST_STREAM, ST_WS, ST_HANG, ST_LINGER };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

/* --fail MODE */
enum fail_mode { FAIL_NONE, FAIL_STATUS, FAIL_RESET, FAIL_CLOSE, FAIL_HANG };

enum endpoint {
    EP_HELLO,
    EP_ECHO,
    EP_BYTES,
    EP_SINK,
    EP_SLOW,
    EP_DRIP,
    EP_SSE,
    EP_STATUS,
    EP_HEADERS,
    EP_CLOSE,
    EP_RESET,
    EP_HANG,
    EP_WS,
    EP_COUNT
};

static const struct {
    const char *name;
    enum endpoint ep;
} endpoints[] = {
    {"echo", EP_ECHO},   {"bytes", EP_BYTES},   {"sink", EP_SINK},       {"slow", EP_SLOW},
    {"drip", EP_DRIP},   {"status", EP_STATUS}, {"headers", EP_HEADERS}, {"close", EP_CLOSE},
    {"reset", EP_RESET}, {"hang", EP_HANG},     {"ws", EP_WS},           {"count", EP_COUNT},
    {"sse", EP_SSE},
};

/* A byte buffer: data waits in [off, len); room is [len, cap). */
struct buf {
    char *p;
    size_t off, len, cap;
};

struct conn {
    int fd;
    uint32_t events; /* what epoll watches for now */
    enum state state;
    int rd_eof, wr_shut;
    struct buf in, out;
    struct buf scratch;       /* /echo's copy of the request, /headers' extra header lines */
    struct conn *next, *prev; /* every connection: for timers, and for exit to free them */
    int timer_on;
    int64_t deadline; /* monotonic ms, when timer_on */

    /* The request being served. */
    enum endpoint ep;
    int keepalive, http10, head_only, req_chunked, resp_chunked;
    enum chunk_state chunk_state;
    uint64_t body_left;    /* Content-Length left, or bytes left in the current chunk */
    uint64_t body_len;     /* decoded body bytes so far */
    uint64_t n, ms, chunk; /* endpoint arguments */
    uint64_t done;         /* /bytes: bytes produced; /drip: chunks sent */
    uint64_t served;       /* requests answered on this connection (--once) */
    char ctype[128];       /* ?type=: the Content-Type of the response, or "" */
    char ws_accept[32];

    /* WebSocket: the data frame whose payload is being echoed. */
    uint64_t ws_left;
    unsigned char ws_mask[4];
    unsigned ws_moff;
};

static struct {
    int ep, lfd;
    const char *name;
    struct conn *conns;
    int timers; /* how many connections have a timer set */
    unsigned long long requests, connections;
    enum fail_mode fail; /* --fail */
    int fail_status;
    int once; /* --once */
    char hello_body[300];
    size_t hello_body_len;
    char hello[600]; /* the whole keepalive response to "GET / HTTP/1.1" */
    size_t hello_len;
    char pattern[PIECE + 26];
} g;

static volatile sig_atomic_t stop_requested;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- buffers ---------------------------------------------------------------------------- */

static size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}

/* Makes room for <n> more bytes at the end of <b>, moving pending data to the front first. */
static void buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return;
    if (b->off > 0) {
        memmove(b->p, b->p + b->off, buf_pending(b));
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= n)
            return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL)
        die("realloc");
    b->cap = cap;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return; /* <p> may be NULL then, and memcpy() must not see it */
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void __attribute__((format(printf, 2, 3))) buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

/* Gives back the memory of an empty <b> that grew past BUF_KEEP for one large message. */
static void buf_shrink(struct buf *b)
{
    if (buf_pending(b) > 0 || b->cap <= BUF_KEEP)
        return;
    free(b->p);
    *b = (struct buf){0};
}

/* ---- small parsers ---------------------------------------------------------------------- */

static struct pt_str trim(const char *p, size_t n)
{
    while (n > 0 && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
        n--;
    return (struct pt_str){p, n};
}

/* Cuts the item before the first <sep> (or all of it) off the front of <s>; returns it. */
static struct pt_str cut(struct pt_str *s, char sep)
{
    const char *at = s->len ? memchr(s->p, sep, s->len) : NULL;
    struct pt_str item = {s->p, at ? (size_t)(at - s->p) : s->len};
    s->p += at ? item.len + 1 : item.len;
    s->len -= at ? item.len + 1 : item.len;
    return item;
}

/* Does the comma-separated header value <v> contain the token <tok> (any case)? */
static int has_token(struct pt_str v, const char *tok)
{
    while (v.len > 0) {
        struct pt_str item = cut(&v, ',');
        if (pt_str_ieq(trim(item.p, item.len), tok))
            return 1;
    }
    return 0;
}

/* Parses the decimal <s>; returns PT_ERROR when it is empty, has a non-digit or overflows. */
static int parse_u64(struct pt_str s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return PT_ERROR;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return PT_ERROR;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return PT_OK;
}

/* Finds argument <name> in query string <q>; returns PT_OK and its raw value in <v>. */
static int query_get(struct pt_str q, const char *name, struct pt_str *v)
{
    while (q.len > 0) {
        *v = cut(&q, '&');
        if (pt_str_eq(cut(v, '='), name))
            return PT_OK;
    }
    return PT_DECLINED;
}

/* Returns numeric argument <name> of <q>, <def> when absent or malformed, at most <max>. */
static uint64_t query_num(struct pt_str q, const char *name, uint64_t def, uint64_t max)
{
    struct pt_str v;
    uint64_t n;
    if (query_get(q, name, &v) != PT_OK || parse_u64(v, &n) != PT_OK)
        return def;
    return n > max ? max : n;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = pt_lower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes <s> ('+' is a space) into <out>, which has room for s.len bytes. */
static size_t pct_decode(struct pt_str s, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] == '%' && i + 2 < s.len && hexval(s.p[i + 1]) >= 0 && hexval(s.p[i + 2]) >= 0) {
            out[n++] = (char)(hexval(s.p[i + 1]) * 16 + hexval(s.p[i + 2]));
            i += 2;
        } else {
            out[n++] = s.p[i] == '+' ? ' ' : s.p[i];
        }
    }
    return n;
}

/* ---- WebSocket accept key: SHA-1 (RFC 3174) and base64 ---------------------------------- */

static uint32_t rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (t < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (t < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
        e = d, d = c, c = rol32(b, 30), b = a, a = tmp;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const unsigned char *data, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    unsigned char block[64];
    size_t i = 0;
    for (; len - i >= 64; i += 64)
        sha1_block(h, data + i);
    size_t rest = len - i;
    memset(block, 0, sizeof(block));
    memcpy(block, data + i, rest);
    block[rest] = 0x80;
    if (rest >= 56) {
        sha1_block(h, block);
        memset(block, 0, sizeof(block));
    }
    for (int j = 0; j < 8; j++)
        block[63 - j] = (unsigned char)(((uint64_t)len * 8) >> (8 * j));
    sha1_block(h, block);
    for (int j = 0; j < 20; j++)
        out[j] = (unsigned char)(h[j / 4] >> (24 - 8 * (j % 4)));
}

/* Writes the Sec-WebSocket-Accept value for <key> into <out> (29 bytes with the NUL). */
static void ws_accept(struct pt_str key, char *out)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char in[128], d[21] = {0};
    memcpy(in, key.p, key.len);
    memcpy(in + key.len, guid, sizeof(guid) - 1);
    sha1(in, key.len + sizeof(guid) - 1, d);
    for (int i = 0; i < 7; i++) {
        uint32_t v = (uint32_t)d[3 * i] << 16 | (uint32_t)d[3 * i + 1] << 8 | d[3 * i + 2];
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = b64[(v >> (18 - 6 * j)) & 63];
    }
    out[27] = '='; /* 20 bytes: the 7th group has one byte of padding */
    out[28] = '\0';
}

/* ---- timers: few connections ever have one, so they are found by a scan ----------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void timer_set(struct conn *c, uint64_t ms)
{
    g.timers += !c->timer_on;
    c->timer_on = 1;
    c->deadline = now_ms() + (int64_t)ms;
}

static void timer_clear(struct conn *c)
{
    g.timers -= c->timer_on;
    c->timer_on = 0;
}

/* Returns the epoll timeout until the next deadline, -1 (forever) when no timer is set. */
static int timers_timeout(void)
{
    if (g.timers == 0)
        return -1;
    int64_t first = INT64_MAX, now = now_ms();
    for (struct conn *c = g.conns; c; c = c->next)
        if (c->timer_on)
            first = pt_min(first, c->deadline);
    return first <= now ? 0 : (int)pt_min(first - now, (int64_t)INT32_MAX);
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
    timer_clear(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        g.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c->scratch.p);
    free(c);
}

static const char *reason(int code)
{
    static const struct {
        int code;
        const char *text;
    } reasons[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {413, "Content Too Large"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < pt_nelems(reasons); i++)
        if (reasons[i].code == code)
            return reasons[i].text;
    return "Unknown";
}

/*
 * Appends the head of a response to <c>'s current request: status <code>, Content-Type
 * <ctype> (none when NULL), Content-Length <clen> (or CHUNKED, or NO_BODY), X-Backend, the
 * Connection header the request needs, then <extra> (whole header lines, may be empty).
 */
static void put_head(struct conn *c, int code, const char *ctype, int64_t clen, const char *extra,
                     size_t extra_len)
{
    buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", code, reason(code));
    if (ctype && c->ctype[0])
        ctype = c->ctype;
    if (ctype)
        buf_printf(&c->out, "Content-Type: %s\r\n", ctype);
    if (clen == CHUNKED)
        buf_printf(&c->out, "Transfer-Encoding: chunked\r\n");
    else if (clen >= 0)
        buf_printf(&c->out, "Content-Length: %lld\r\n", (long long)clen);
    buf_printf(&c->out, "X-Backend: %s\r\n", g.name);
    if (!c->keepalive)
        buf_printf(&c->out, "Connection: close\r\n");
    else if (c->http10)
        buf_printf(&c->out, "Connection: keep-alive\r\n");
    buf_add(&c->out, extra, extra_len);
    buf_add(&c->out, "\r\n", 2);
}

/* Appends a whole response with a small text <body>; HEAD requests get the head only. */
static void put_response(struct conn *c, int code, const char *extra, size_t extra_len,
                         const char *body, size_t body_len)
{
    int bodyless = code < 200 || code == 204 || code == 304;
    put_head(c, code, "text/plain", bodyless ? NO_BODY : (int64_t)body_len, extra, extra_len);
    if (!bodyless && !c->head_only)
        buf_add(&c->out, body, body_len);
}

/* The response to <c>'s current request is complete: serve the next one or close. */
static void finish(struct conn *c)
{
    c->state = c->keepalive ? ST_HEAD : ST_LINGER;
}

/* Answers with error <code> and closes: after a bad request the stream cannot be trusted. */
static void fail(struct conn *c, int code)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", code, reason(code));
    c->keepalive = 0;
    put_response(c, code, "", 0, body, (size_t)n);
    finish(c);
}

static void put_hello(struct conn *c, const char *extra, size_t extra_len)
{
    if (c->keepalive && !c->http10 && !c->head_only && extra_len == 0 && c->ctype[0] == 0)
        buf_add(&c->out, g.hello, g.hello_len); /* the benchmark's path: one memcpy */
    else
        put_response(c, 200, extra, extra_len, g.hello_body, g.hello_body_len);
}

static void put_chunk(struct conn *c, const char *p, size_t n)
{
    buf_printf(&c->out, "%zx\r\n", n);
    buf_add(&c->out, p, n);
    buf_add(&c->out, "\r\n", 2);
}

/* ---- request head ----------------------------------------------------------------------- */

/* Returns the length of the request head at the start of <p>, blank line included, or 0 when
 * it is not all there.  Lines end in LF; a CR before it is optional (leniency). */
static size_t head_end(const char *p, size_t n)
{
    const char *end = p + n, *q = p;
    while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
        q++;
        if (q < end && *q == '\r')
            q++;
        if (q < end && *q == '\n')
            return (size_t)(q + 1 - p);
    }
    return 0;
}

struct head {
    struct pt_str method, target, ws_key;
    int has_length, upgrade_ws, connection_upgrade, expect_continue, conn_close, conn_ka;
    uint64_t length;
};

/* Reads one header line <name>: <v> into <h> and <c>; returns PT_OK or 400. */
static int head_header(struct conn *c, struct head *h, struct pt_str name, struct pt_str v)
{
    uint64_t len;
    if (pt_str_ieq(name, "content-length")) {
        if (parse_u64(v, &len) != PT_OK || (h->has_length && len != h->length))
            return 400;
        h->has_length = 1;
        h->length = len;
    } else if (pt_str_ieq(name, "transfer-encoding")) {
        /* RFC 9112 6.1: a request body is only delimited when chunked is the last coding */
        if (v.len < 7 || strncasecmp(v.p + v.len - 7, "chunked", 7) != 0)
            return 400;
        c->req_chunked = 1;
    } else if (pt_str_ieq(name, "connection")) {
        h->conn_close |= has_token(v, "close");
        h->conn_ka |= has_token(v, "keep-alive");
        h->connection_upgrade |= has_token(v, "upgrade");
    } else if (pt_str_ieq(name, "upgrade")) {
        h->upgrade_ws |= has_token(v, "websocket");
    } else if (pt_str_ieq(name, "expect")) {
        h->expect_continue = pt_str_ieq(v, "100-continue");
    } else if (pt_str_ieq(name, "sec-websocket-key")) {
        h->ws_key = v;
    }
    return PT_OK;
}

/* Parses the head <p> of <n> bytes into <h> and <c>'s request fields; returns PT_OK or 400. */
static int head_parse(struct conn *c, struct head *h, const char *p, size_t n)
{
    const char *end = p + n, *eol = memchr(p, '\n', n);
    struct pt_str line = trim(p, (size_t)(eol - p));
    const char *sp1 = memchr(line.p, ' ', line.len);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line.p + line.len - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp2 == sp1 + 1)
        return 400;
    h->method = (struct pt_str){line.p, (size_t)(sp1 - line.p)};
    h->target = (struct pt_str){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    struct pt_str version = trim(sp2 + 1, (size_t)(line.p + line.len - sp2 - 1));
    if (!pt_str_eq(version, "HTTP/1.1") && !pt_str_eq(version, "HTTP/1.0"))
        return 400;
    c->http10 = version.p[7] == '0';
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        struct pt_str hl = trim(p, (size_t)(eol - p));
        const char *colon = memchr(hl.p, ':', hl.len);
        if (hl.len == 0)
            break;
        if (colon == NULL || colon == hl.p)
            return 400;
        struct pt_str name = {hl.p, (size_t)(colon - hl.p)};
        if (head_header(c, h, name, trim(colon + 1, (size_t)(hl.p + hl.len - colon - 1))) != PT_OK)
            return 400;
    }
    c->keepalive = c->http10 ? h->conn_ka : !h->conn_close;
    c->head_only = pt_str_eq(h->method, "HEAD");
    /* RFC 9112 6.3: chunked wins over Content-Length, which is then ignored */
    c->body_left = c->req_chunked ? 0 : h->length;
    return PT_OK;
}

static enum endpoint endpoint_of(struct pt_str path)
{
    const char *slash = memrchr(path.p, '/', path.len);
    struct pt_str seg = path;
    if (slash)
        seg = (struct pt_str){slash + 1, (size_t)(path.p + path.len - slash - 1)};
    for (size_t i = 0; i < pt_nelems(endpoints); i++)
        if (pt_str_eq(seg, endpoints[i].name))
            return endpoints[i].ep;
    return EP_HELLO;
}

/* Can <name> (<name_len> bytes) followed by its value (<value_len> bytes) be sent as a header
 * line without splitting the header block? */
static int header_safe(const char *name, size_t name_len, size_t value_len)
{
    if (name_len == 0)
        return 0;
    for (size_t i = 0; i < name_len; i++)
        if (name[i] <= ' ' || name[i] == ':' || name[i] == 0x7f)
            return 0;
    for (size_t i = name_len; i < name_len + value_len; i++)
        if (name[i] == '\r' || name[i] == '\n' || name[i] == '\0')
            return 0;
    return 1;
}

/* Appends to <c>'s scratch one "Name: value" line per argument of <q>; an argument whose
 * decoded name or value could split the header block is skipped. */
static void headers_from_query(struct conn *c, struct pt_str q)
{
    char *tmp = malloc(q.len + 1);
    if (tmp == NULL)
        die("malloc");
    while (q.len > 0) {
        struct pt_str value = cut(&q, '&');
        size_t name_len = pct_decode(cut(&value, '='), tmp);
        size_t value_len = pct_decode(value, tmp + name_len);
        if (name_len == 4 && memcmp(tmp, "type", 4) == 0)
            continue; /* ?type= is the Content-Type, not an extra header */
        if (header_safe(tmp, name_len, value_len)) {
            buf_add(&c->scratch, tmp, name_len);
            buf_add(&c->scratch, ": ", 2);
            buf_add(&c->scratch, tmp + name_len, value_len);
            buf_add(&c->scratch, "\r\n", 2);
        }
    }
    free(tmp);
}

/* Sets <c>'s Content-Type from argument "type" of <q>, when it is there and fits on a header
 * line; else clears it. */
static void ctype_from_query(struct conn *c, struct pt_str q)
{
    struct pt_str v;
    size_t n;
    c->ctype[0] = 0;
    if (query_get(q, "type", &v) != PT_OK || v.len >= sizeof(c->ctype))
        return;
    n = pct_decode(v, c->ctype);
    c->ctype[n] = 0;
    if (strlen(c->ctype) != n || strpbrk(c->ctype, "\r\n"))
        c->ctype[0] = 0; /* a NUL, CR or LF would split the head */
}

/*
 * Takes what <c>'s endpoint needs from the parsed head <h> (raw bytes <raw>, <raw_len> long)
 * before the head leaves the input buffer: arguments, /echo's copy, /headers' lines.
 */
static void request_prepare(struct conn *c, struct head *h, const char *raw, size_t raw_len)
{
    struct pt_str query = h->target, path = cut(&query, '?');
    c->ep = endpoint_of(path);
    c->scratch.off = c->scratch.len = 0;
    c->n = query_num(query, "n", 0, UINT64_MAX / 2);
    c->ms = query_num(query, "ms", 0, 24 * 3600 * 1000);
    c->resp_chunked = query_num(query, "chunked", 0, 1) == 1;
    c->chunk = query_num(query, "chunk", CHUNK_DEFAULT, CHUNK_MAX);
    c->chunk = c->chunk ? c->chunk : 1;
    ctype_from_query(c, query);
    if (c->ep == EP_STATUS)
        c->n = pt_max(query_num(query, "code", 200, 999), (uint64_t)100);
    else if (c->ep == EP_ECHO)
        buf_add(&c->scratch, raw, raw_len);
    else if (c->ep == EP_HEADERS)
        headers_from_query(c, query);
    if (c->ep == EP_WS && h->upgrade_ws && h->connection_upgrade && pt_str_eq(h->method, "GET") &&
        h->ws_key.len > 0 && h->ws_key.len <= 64)
        ws_accept(h->ws_key, c->ws_accept);
    else if (c->ep == EP_WS)
        c->ep = EP_STATUS, c->n = 400; /* a bad handshake */
    /* RFC 9110 10.1.1: a client waiting for 100 Continue would stall until its own timeout */
    if (h->expect_continue && !c->http10 && (c->req_chunked || c->body_left > 0))
        buf_add(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

/* ---- request body ----------------------------------------------------------------------- */

/* Hands <n> decoded body bytes to <c>'s endpoint; returns PT_OK or 413. */
static int body_data(struct conn *c, const char *p, size_t n)
{
    c->body_len += n;
    if (c->ep != EP_ECHO)
        return PT_OK; /* /sink and every other endpoint discard the body */
    if (c->body_len > ECHO_MAX)
        return 413;
    buf_add(&c->scratch, p, n);
    return PT_OK;
}

/* Hands the body bytes <c>'s input holds, up to body_left, to its endpoint. */
static int body_take(struct conn *c)
{
    size_t n = (size_t)pt_min((uint64_t)buf_pending(&c->in), c->body_left);
    int rc = body_data(c, c->in.p + c->in.off, n);
    buf_consume(&c->in, n);
    c->body_left -= n;
    return rc;
}

/* Takes one LF-terminated line off <c>'s input; PT_AGAIN when it is not all there yet. */
static int take_line(struct conn *c, struct pt_str *line)
{
    const char *p = c->in.p + c->in.off;
    const char *eol = memchr(p, '\n', buf_pending(&c->in));
    if (eol == NULL)
        return buf_pending(&c->in) > LINE_MAX ? 400 : PT_AGAIN;
    *line = trim(p, (size_t)(eol - p));
    buf_consume(&c->in, (size_t)(eol - p) + 1);
    return PT_OK;
}

/* One step of the chunked decoder (RFC 9112 7.1): PT_OK (progress), PT_AGAIN, PT_DONE, or
 * an HTTP error status. */
static int chunked_step(struct conn *c)
{
    struct pt_str line, hex;
    uint64_t size = 0;
    int rc;
    if (c->chunk_state == CH_DATA) {
        if (buf_pending(&c->in) == 0)
            return PT_AGAIN;
        rc = body_take(c);
        c->chunk_state = c->body_left ? CH_DATA : CH_DATA_END;
        return rc;
    }
    if ((rc = take_line(c, &line)) != PT_OK)
        return rc;
    switch (c->chunk_state) {
    case CH_SIZE:
        hex = cut(&line, ';'); /* chunk extensions are ignored */
        hex = trim(hex.p, hex.len);
        for (size_t i = 0; i < hex.len; i++) {
            if (hexval(hex.p[i]) < 0 || size >> 60)
                return 400;
            size = size * 16 + (uint64_t)hexval(hex.p[i]);
        }
        if (hex.len == 0)
            return 400;
        c->body_left = size;
        c->chunk_state = size ? CH_DATA : CH_TRAILER;
        return PT_OK;
    case CH_DATA_END: c->chunk_state = CH_SIZE; return line.len == 0 ? PT_OK : 400;
    default: /* CH_TRAILER: fields are ignored until the blank line */
        return line.len == 0 ? PT_DONE : PT_OK;
    }
}

/* Reads as much of the body as <c>'s input holds: PT_DONE, PT_AGAIN or an error status. */
static int body_read(struct conn *c)
{
    int rc;
    if (c->req_chunked) {
        while ((rc = chunked_step(c)) == PT_OK)
            ;
        return rc;
    }
    rc = body_take(c);
    if (rc != PT_OK)
        return rc;
    return c->body_left == 0 ? PT_DONE : PT_AGAIN;
}

/* ---- responses -------------------------------------------------------------------------- */

/* /bytes: produces the next piece of the body; PT_DONE after the last one. */
static int bytes_step(struct conn *c)
{
    uint64_t left = c->n - c->done;
    size_t n = (size_t)pt_min(left, c->resp_chunked ? c->chunk : (uint64_t)PIECE);
    const char *p = g.pattern + c->done % 26; /* the pattern repeats every 26 bytes */
    if (c->resp_chunked && n > 0)
        put_chunk(c, p, n);
    else
        buf_add(&c->out, p, n);
    c->done += n;
    if (c->done < c->n)
        return PT_OK;
    if (c->resp_chunked)
        buf_add(&c->out, "0\r\n\r\n", 5);
    finish(c);
    return PT_DONE;
}

/* /drip and /sse: sends the next chunk, then waits M ms, or ends the body after the last one. */
static void drip_step(struct conn *c)
{
    char line[48];
    if (c->done < c->n) {
        int len =
            snprintf(line, sizeof(line), c->ep == EP_SSE ? "data: event %llu\n\n" : "chunk %llu\n",
                     (unsigned long long)c->done++);
        put_chunk(c, line, (size_t)len);
    }
    if (c->done < c->n) {
        c->state = ST_WAIT;
        timer_set(c, c->ms);
        return;
    }
    buf_add(&c->out, "0\r\n\r\n", 5);
    finish(c);
}

static void respond_ws(struct conn *c)
{
    buf_printf(&c->out,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n",
               c->ws_accept, g.name);
    c->ws_left = 0;
    c->state = ST_WS;
}

/* Fails <c>'s request, all read, as --fail or --once say.  Returns PT_ERROR when <c> must
 * be dropped at once (with a RST when its endpoint is EP_RESET). */
static int fail_request(struct conn *c)
{
    char text[32];
    int len;
    switch (g.fail) {
    case FAIL_STATUS:
        finish(c);
        len = snprintf(text, sizeof(text), "status %d\n", g.fail_status);
        put_response(c, g.fail_status, "", 0, text, (size_t)len);
        return PT_OK;
    case FAIL_HANG: c->state = ST_HANG; return PT_OK;
    case FAIL_RESET: c->ep = EP_RESET; return PT_ERROR;
    default: return PT_ERROR; /* FAIL_CLOSE, and --once */
    }
}

/* The request (head and body) is all read: answers it.  Returns PT_ERROR when <c> must be
 * dropped at once (/reset). */
static int respond(struct conn *c)
{
    char text[128], hdr[128];
    int len, hlen;
    if (g.fail != FAIL_NONE || (g.once && c->served > 0))
        return fail_request(c);
    c->served++;
    finish(c);
    switch (c->ep) {
    case EP_ECHO:
    case EP_SINK:
        hlen =
            snprintf(hdr, sizeof(hdr), "X-Received-Body-Length: %llu\r\nX-Received-Chunked: %d\r\n",
                     (unsigned long long)c->body_len, c->req_chunked);
        len =
            snprintf(text, sizeof(text), "received %llu bytes\n", (unsigned long long)c->body_len);
        if (c->ep == EP_ECHO)
            put_response(c, 200, hdr, (size_t)hlen, c->scratch.p, c->scratch.len);
        else
            put_response(c, 200, hdr, (size_t)hlen, text, (size_t)len);
        c->scratch.len = 0;
        buf_shrink(&c->scratch);
        return PT_OK;
    case EP_BYTES:
        put_head(c, 200, "application/octet-stream", c->resp_chunked ? CHUNKED : (int64_t)c->n, "",
                 0);
        c->done = 0;
        if (!c->head_only)
            c->state = ST_STREAM;
        return PT_OK;
    case EP_DRIP:
    case EP_SSE:
        put_head(c, 200, c->ep == EP_SSE ? "text/event-stream" : "text/plain", CHUNKED, "", 0);
        c->done = 0;
        if (!c->head_only)
            drip_step(c);
        return PT_OK;
    case EP_SLOW:
        c->state = ST_WAIT;
        timer_set(c, c->ms);
        return PT_OK;
    case EP_STATUS:
        len = snprintf(text, sizeof(text), "status %d\n", (int)c->n);
        put_response(c, (int)c->n, "", 0, text, (size_t)len);
        return PT_OK;
    case EP_COUNT:
        len = snprintf(text, sizeof(text), "requests=%llu connections=%llu\n", g.requests,
                       g.connections);
        put_response(c, 200, "", 0, text, (size_t)len);
        return PT_OK;
    case EP_HEADERS: put_hello(c, c->scratch.p, c->scratch.len); return PT_OK;
    case EP_CLOSE:
        c->keepalive = 0;
        put_hello(c, "", 0);
        finish(c);
        return PT_OK;
    case EP_HANG: c->state = ST_HANG; return PT_OK;
    case EP_RESET: return PT_ERROR;
    case EP_WS: respond_ws(c); return PT_OK;
    default: put_hello(c, "", 0); return PT_OK;
    }
}

/* The timer of <c> fired: /slow answers, /drip sends its next chunk, a lingering close ends. */
static int on_timer(struct conn *c)
{
    if (c->state == ST_LINGER)
        return PT_ERROR;
    if (c->ep == EP_DRIP || c->ep == EP_SSE) {
        drip_step(c);
        return PT_OK;
    }
    finish(c);
    put_hello(c, "", 0);
    return PT_OK;
}

/* ---- WebSocket frames (RFC 6455 5.2) ------------------------------------------------------ */

static void ws_frame_head(struct conn *c, unsigned b0, uint64_t len)
{
    unsigned char h[10] = {(unsigned char)b0};
    size_t n = 2;
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len <= 0xffff) {
        h[1] = 126, h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    buf_add(&c->out, h, n);
}

/* Copies <n> payload bytes from <c>'s input to its output, unmasking them. */
static void ws_unmask_to_out(struct conn *c, size_t n)
{
    const unsigned char *p = (const unsigned char *)c->in.p + c->in.off;
    buf_reserve(&c->out, n);
    unsigned char *o = (unsigned char *)c->out.p + c->out.len;
    for (size_t i = 0; i < n; i++)
        o[i] = p[i] ^ c->ws_mask[c->ws_moff++ & 3];
    c->out.len += n;
    buf_consume(&c->in, n);
}

/* One step of the WebSocket echo: PT_OK (progress), PT_AGAIN or PT_ERROR (drop). */
static int ws_step(struct conn *c)
{
    const unsigned char *p = (const unsigned char *)c->in.p + c->in.off;
    size_t avail = buf_pending(&c->in), hl = 2;
    if (c->ws_left > 0) {
        size_t n = (size_t)pt_min((uint64_t)avail, c->ws_left);
        if (n == 0)
            return PT_AGAIN;
        ws_unmask_to_out(c, n);
        c->ws_left -= n;
        return PT_OK;
    }
    if (avail < 2)
        return PT_AGAIN;
    unsigned opcode = p[0] & 0x0f, masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    hl += len == 126 ? 2 : len == 127 ? 8 : 0;
    if (avail < hl + (masked ? 4 : 0))
        return PT_AGAIN;
    if (len >= 126) {
        len = 0;
        for (size_t i = 2; i < hl; i++)
            len = len << 8 | p[i];
    }
    memset(c->ws_mask, 0, 4); /* leniency: an unmasked client frame is taken as is */
    if (masked)
        memcpy(c->ws_mask, p + hl, 4), hl += 4;
    if (opcode >= 8 && (len > 125 || avail < hl + len))
        return len > 125 ? PT_ERROR : PT_AGAIN; /* control frames come whole (5.5) */
    if ((opcode > 2 && opcode < 8) || opcode > 10)
        return PT_ERROR;
    buf_consume(&c->in, hl);
    c->ws_moff = 0;
    if (opcode == 10) { /* pong: nothing to do but drop it */
        buf_consume(&c->in, (size_t)len);
        return PT_OK;
    }
    /* data frames keep their FIN bit and opcode, so a fragmented message stays fragmented */
    ws_frame_head(c, opcode == 9 ? 0x8a : (p[0] & 0x80) | opcode, len);
    if (opcode < 8) {
        c->ws_left = len;
        return PT_OK;
    }
    ws_unmask_to_out(c, (size_t)len);
    if (opcode == 8) /* close: echo its status code, then close the TCP connection */
        c->state = ST_LINGER;
    return PT_OK;
}

/* ---- the per-connection state machine ----------------------------------------------------- */

/* Reads the next request head from <c>'s input: PT_OK (progress), PT_AGAIN, or PT_ERROR. */
static int head_step(struct conn *c)
{
    struct head h = {0};
    /* RFC 9112 2.2: empty lines before a request line are ignored */
    while (buf_pending(&c->in) > 0 && (c->in.p[c->in.off] == '\r' || c->in.p[c->in.off] == '\n'))
        buf_consume(&c->in, 1);
    const char *p = c->in.p + c->in.off;
    size_t n = head_end(p, buf_pending(&c->in));
    if (n == 0) {
        if (buf_pending(&c->in) >= IN_MAX) {
            fail(c, 431);
            return PT_OK;
        }
        if (c->rd_eof)
            c->state = ST_LINGER; /* the client is done: send what is left, then close */
        return c->rd_eof ? PT_OK : PT_AGAIN;
    }
    g.requests++;
    c->ep = EP_HELLO;
    c->ctype[0] = 0; /* a bad request's error answer keeps its own type */
    c->req_chunked = 0;
    c->chunk_state = CH_SIZE;
    c->body_len = 0;
    int rc = head_parse(c, &h, p, n);
    if (rc != PT_OK) {
        fail(c, rc);
        return PT_OK;
    }
    request_prepare(c, &h, p, n);
    buf_consume(&c->in, n);
    c->state = ST_BODY;
    return PT_OK;
}

/* One step of <c>'s state machine: PT_OK when it made progress, PT_AGAIN when it waits for
 * input, output room or a timer, PT_ERROR when <c> must be dropped. */
static int conn_step(struct conn *c)
{
    int rc;
    switch (c->state) {
    case ST_HEAD: return head_step(c);
    case ST_BODY:
        rc = body_read(c);
        if (rc == PT_DONE)
            return respond(c);
        if (rc == PT_AGAIN)
            return c->rd_eof ? PT_ERROR : PT_AGAIN;
        fail(c, rc);
        return PT_OK;
    case ST_STREAM:
        bytes_step(c); /* conn_run() stops producing once OUT_HIGH bytes wait */
        return PT_OK;
    case ST_WS: rc = ws_step(c); return rc == PT_AGAIN && c->rd_eof ? PT_ERROR : rc;
    case ST_WAIT:
        /* a client that closes while waiting has given up (HTTP clients do not half-close) */
        return c->rd_eof ? PT_ERROR : PT_AGAIN;
    default: /* ST_HANG and ST_LINGER read and drop whatever comes */
        buf_consume(&c->in, buf_pending(&c->in));
        return c->rd_eof && c->state == ST_HANG ? PT_ERROR : PT_AGAIN;
    }
}

/* Writes what <c> has pending; returns PT_ERROR when the peer is gone. */
static int conn_flush(struct conn *c)
{
    while (buf_pending(&c->out) > 0) {
        ssize_t n = write(c->fd, c->out.p + c->out.off, buf_pending(&c->out));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? PT_AGAIN : PT_ERROR;
        buf_consume(&c->out, (size_t)n);
    }
    buf_shrink(&c->out);
    return PT_OK;
}

/* Watches <c> for what its state needs: input while it has room for it and is not backed
 * up on output, output while some is pending. */
static void conn_watch(struct conn *c)
{
    uint32_t ev = 0;
    if (!c->rd_eof && buf_pending(&c->in) < IN_MAX && buf_pending(&c->out) < OUT_HIGH)
        ev |= EPOLLIN;
    if (buf_pending(&c->out) > 0 || c->state == ST_STREAM)
        ev |= EPOLLOUT;
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl");
    c->events = ev;
}

/* Runs <c> as far as its input, output and timers let it; returns PT_ERROR when it closed. */
static int conn_run(struct conn *c)
{
    int rc = PT_OK;
    while (rc == PT_OK && buf_pending(&c->out) < OUT_HIGH)
        rc = conn_step(c);
    if (rc == PT_ERROR && c->ep == EP_RESET) {
        /* SO_LINGER with a zero timeout makes close() send a RST instead of a FIN */
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    if (rc == PT_ERROR) {
        conn_close(c);
        return PT_ERROR;
    }
    if (conn_flush(c) == PT_ERROR) {
        conn_close(c);
        return PT_ERROR;
    }
    if (c->state == ST_LINGER && buf_pending(&c->out) == 0) {
        if (c->rd_eof) {
            conn_close(c);
            return PT_ERROR;
        }
        /* A close with unread input sends a RST, which can destroy the response before the
         * client reads it: send a FIN and wait (bounded) for the client's. */
        if (!c->wr_shut) {
            shutdown(c->fd, SHUT_WR);
            c->wr_shut = 1;
            timer_set(c, LINGER_MS);
        }
    }
    conn_watch(c);
    return PT_OK;
}

/* Reads once into <c>'s input: level-triggered epoll reports what is left, and a read that
 * would only return EAGAIN costs a syscall per request. */
static int conn_read(struct conn *c)
{
    struct buf *b = &c->in;
    if (b->off > 0 && b->len == b->cap)
        buf_reserve(b, 1);
    if (b->len == b->cap && b->cap < IN_MAX)
        buf_reserve(b, b->cap);
    if (b->len == b->cap)
        return PT_OK;
    ssize_t n = read(c->fd, b->p + b->len, b->cap - b->len);
    if (n > 0)
        b->len += (size_t)n;
    else if (n == 0)
        c->rd_eof = 1;
    else if (errno != EAGAIN && errno != EINTR)
        return PT_ERROR;
    return PT_OK;
}

static void conn_event(struct conn *c, uint32_t ev)
{
    if ((ev & EPOLLERR) || ((ev & EPOLLHUP) && !(ev & EPOLLIN))) {
        conn_close(c);
        return;
    }
    if ((ev & EPOLLIN) && conn_read(c) == PT_ERROR) {
        conn_close(c);
        return;
    }
    conn_run(c);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(g.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL)
            die("calloc");
        c->fd = fd;
        c->events = EPOLLIN;
        buf_reserve(&c->in, IN_INIT);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &e) < 0)
            die("epoll_ctl");
        c->next = g.conns;
        if (g.conns)
            g.conns->prev = c;
        g.conns = c;
        g.connections++;
    }
}

static void timers_fire(void)
{
    if (g.timers == 0)
        return;
    int64_t now = now_ms();
    for (struct conn *c = g.conns, *next; c; c = next) {
        next = c->next; /* on_timer() and conn_run() may close <c>, never another connection */
        if (!c->timer_on || c->deadline > now)
            continue;
        timer_clear(c);
        if (on_timer(c) == PT_ERROR)
            conn_close(c);
        else
            conn_run(c);
    }
}

/* ---- start-up --------------------------------------------------------------------------- */

/* Opens the listening socket for <spec> ("HOST:PORT", "[V6]:PORT" or "PORT"); returns it. */
static int listen_on(const char *spec, int *port)
{
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(spec, ':'), *serv = colon ? colon + 1 : spec;
    if (colon) {
        size_t n = (size_t)(colon - spec);
        if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']')
            spec++, n -= 2;
        snprintf(host, sizeof(host), "%.*s", (int)n, spec);
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int rc = getaddrinfo(host, serv, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "pt-backend: bad listen address \"%s\": %s\n", spec, gai_strerror(rc));
        exit(2);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0)
        die("bind/listen");
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void on_signal(int sig)
{
    pt_unused(sig);
    stop_requested = 1;
}

/* Blocks TERM and INT except inside epoll_pwait(), so a stop can never slip in between the
 * check of the flag and the wait; returns the mask to wait with. */
static sigset_t signals_setup(void)
{
    sigset_t block, wait_mask;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    return wait_mask;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: pt-backend [--listen HOST:PORT] [--name NAME] [--fail CODE|reset|close|hang]"
            " [--once]\n");
    exit(2);
}

/* --fail MODE: a status code (100-999), reset, close or hang. */
static void parse_fail(const char *mode)
{
    static const struct {
        const char *name;
        enum fail_mode mode;
    } modes[] = {{"reset", FAIL_RESET}, {"close", FAIL_CLOSE}, {"hang", FAIL_HANG}};
    uint64_t code;
    for (size_t i = 0; i < pt_nelems(modes); i++) {
        if (strcmp(mode, modes[i].name) == 0) {
            g.fail = modes[i].mode;
            return;
        }
    }
    if (parse_u64(pt_str_c(mode), &code) != PT_OK || code < 100 || code > 999)
        usage();
    g.fail = FAIL_STATUS;
    g.fail_status = (int)code;
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:0";
    int port;
    g.name = "backend";
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--listen") == 0)
            listen_spec = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--name") == 0)
            g.name = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--fail") == 0)
            parse_fail(argv[++i]);
        else if (strcmp(argv[i], "--once") == 0)
            g.once = 1;
        else
            usage();
    }
    if (strlen(g.name) > 200 || strpbrk(g.name, "\r\n"))
        usage();
    for (size_t i = 0; i < sizeof(g.pattern); i++)
        g.pattern[i] = (char)('a' + i % 26);
    g.hello_body_len =
        (size_t)snprintf(g.hello_body, sizeof(g.hello_body), "hello from %s\n", g.name);
    g.hello_len =
        (size_t)snprintf(g.hello, sizeof(g.hello),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "X-Backend: %s\r\n\r\n%s",
                         g.hello_body_len, g.name, g.hello_body);
    sigset_t wait_mask = signals_setup();
    g.lfd = listen_on(listen_spec, &port);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL}, events[256];
    if (g.ep < 0 || epoll_ctl(g.ep, EPOLL_CTL_ADD, g.lfd, &e) < 0)
        die("epoll");
    printf("READY %d\n", port);
    fflush(stdout);

    while (!stop_requested) {
        int n = epoll_pwait(g.ep, events, (int)pt_nelems(events), timers_timeout(), &wait_mask);
        if (n < 0 && errno != EINTR)
            die("epoll_pwait");
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all();
            else
                conn_event(events[i].data.ptr, events[i].events);
        }
        timers_fire();
    }
    while (g.conns)
        conn_close(g.conns);
    close(g.lfd);
    close(g.ep);
    return 0;
}
