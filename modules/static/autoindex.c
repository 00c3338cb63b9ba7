/*
 * autoindex.c: nginx's autoindex.  A URI ending in '/' whose directory has no index file is
 * answered, with autoindex on, by a listing of the directory in nginx's bytes: HTML (its
 * layout: names over 50 bytes cut with "..>", or 50 characters when the answer's charset is
 * utf-8, sizes exact or rounded to K, M or G, times in GMT or local time), JSON, JSONP (the
 * callback argument names the function) or XML.
 *
 * As nginx: names starting with '.' are left out; directories come first, then the rest,
 * each sorted by strcmp() of the names; an entry's type, size and time are stat()'s (a
 * symlink's target's; the link's own when the target is gone); an entry stat() may not see
 * is left out; the answer has no Last-Modified, ETag or Content-Length (chunked, or up to
 * the close for HTTP/1.0).  The page is built whole in the request pool, as nginx builds it,
 * and goes out in pieces while the client takes them.  Unlike nginx, which sends the header
 * before it reads the directory, the directory is read first: a read that fails is a 500
 * rather than an answer cut short; the page is made after the header, whose charset says
 * how to measure names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/http_date.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/times.h"
#include "modules/static/static.h"

/* nginx's NGX_HTTP_AUTOINDEX_NAME_LEN: the width of the HTML listing's name column. */
#define NAME_LEN 50
/* How much of the page one send hands to the client. */
#define SEND_CHUNK 65536
/* nginx refuses a longer jsonp callback name. */
#define CALLBACK_MAX 128

struct entry {
    struct pt_str name;
    time_t mtime;
    int64_t size;
    unsigned dir : 1;
    unsigned file : 1; /* a regular file; neither: "other" (a device, a dangling link) */
};

/* A listing: what it shows, then the page made of it and how much of the page went. */
struct listing {
    const struct static_loc_conf *lc;
    int format;             /* AUTOINDEX_*: jsonp without a callback is json */
    struct pt_str uri;      /* the URI, decoded, for the HTML title */
    struct pt_str callback; /* jsonp's function */
    long offset;            /* seconds added to HTML times: the local zone's, or 0 (GMT) */
    int utf8;               /* the answer's charset is utf-8: names measured in characters */
    struct entry *e;
    size_t n, cap;
    struct pt_str page;
    size_t sent;
};

/* Where a page is written, or only measured while p is NULL: each format is written by one
 * function run twice, so that the page is allocated once and exactly. */
struct out {
    char *p;
    size_t n;
};

/* ---- writing ----------------------------------------------------------------------------- */

static void put(struct out *o, const char *s, size_t n)
{
    if (o->p)
        memcpy(o->p + o->n, s, n);
    o->n += n;
}

#define put_lit(o, lit) put(o, lit, sizeof(lit) - 1)

static void put_str(struct out *o, struct pt_str s)
{
    put(o, s.p, s.len);
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct out *o, const char *fmt, ...)
{
    char buf[96];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, buf, (size_t)pt_min(n, (int)sizeof(buf) - 1));
}

/* <s> as nginx's ngx_escape_html writes it: '<', '>', '&' and '"' as entities. */
static void put_html(struct out *o, struct pt_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        switch (s.p[i]) {
        case '<': put_lit(o, "&lt;"); break;
        case '>': put_lit(o, "&gt;"); break;
        case '&': put_lit(o, "&amp;"); break;
        case '"': put_lit(o, "&quot;"); break;
        default: put(o, s.p + i, 1);
        }
    }
}

/* <s> as nginx's NGX_ESCAPE_URI_COMPONENT writes it: every byte but ALPHA, DIGIT, '-', '.',
 * '_' and '~' as %XX (upper-case hex), so that any name makes a relative link. */
static void put_uri_component(struct out *o, struct pt_str s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            put(o, s.p + i, 1);
        else
            put(o, esc, 3);
    }
}

/* <s> as nginx's ngx_escape_json writes it: '"' and '\\' after a backslash, control bytes as
 * \n \r \t \b \f or \u00XX with upper-case hex (pt_escape_byte's JSON writes lower-case). */
static void put_json(struct out *o, struct pt_str s)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char named[32] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};

    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        char esc[6] = {'\\', (char)c, '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            put(o, esc, 2);
        } else if (c >= 0x20) {
            put(o, s.p + i, 1);
        } else if (named[c]) {
            esc[1] = named[c];
            put(o, esc, 2);
        } else {
            esc[1] = 'u';
            put(o, esc, 6);
        }
    }
}

static const char *type_name(const struct entry *e)
{
    return e->dir ? "directory" : e->file ? "file" : "other";
}

/* ---- the formats ------------------------------------------------------------------------- */

/* The size column of an HTML line: bytes in 19 columns, or nginx's rounding to K (past 9999
 * bytes), M and G, half a unit up, in 7; "-" for a directory. */
static void put_size(struct out *o, const struct entry *e, int exact)
{
    static const int64_t unit[] = {1024LL * 1024 * 1024, 1024 * 1024, 1024};
    static const char scale[] = "GMK";
    int64_t len = e->size;

    if (e->dir) {
        put_str(o, exact ? PT_STR("                  -") : PT_STR("      -"));
        return;
    }
    if (exact) {
        putf(o, "%19lld", (long long)len);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (len > (i < 2 ? unit[i] - 1 : 9999)) {
            putf(o, "%6lld%c", (long long)(len / unit[i] + (len % unit[i] > unit[i] / 2 - 1)),
                 scale[i]);
            return;
        }
    }
    putf(o, " %6lld", (long long)len);
}

/* nginx's ngx_utf8_decode: the code point of the sequence at *<p> (<n> bytes left, at least
 * one), *<p> moved past what it read; above 0x10ffff for what nginx does not take as UTF-8
 * (a lead byte below 0xc2, a sequence cut short or holding a byte below 0x80, an overlong
 * form).  Like nginx, it does not check that the other bytes are 10xxxxxx. */
static uint32_t utf8_decode(const unsigned char **p, size_t n)
{
    uint32_t u = **p, valid;
    size_t len;

    if (u >= 0xf0)
        u &= 0x07, valid = 0xffff, len = 3;
    else if (u >= 0xe0)
        u &= 0x0f, valid = 0x7ff, len = 2;
    else if (u >= 0xc2)
        u &= 0x1f, valid = 0x7f, len = 1;
    else {
        (*p)++;
        return 0xffffffff;
    }
    if (n - 1 < len)
        return 0xfffffffe;
    (*p)++;
    for (; len; len--) {
        uint32_t c = *(*p)++;
        if (c < 0x80)
            return 0xffffffff;
        u = (u << 6) | (c & 0x3f);
    }
    return u > valid ? u : 0xffffffff;
}

/* The width of <name> as nginx's listing counts it under charset utf-8 (ngx_utf8_length):
 * its characters, or its bytes when it is not UTF-8. */
static size_t utf8_width(struct pt_str name)
{
    const unsigned char *p = (const unsigned char *)name.p, *end = p + name.len;
    size_t n = 0;

    for (; p < end; n++) {
        if (*p < 0x80)
            p++;
        else if (utf8_decode(&p, (size_t)(end - p)) > 0x10ffff)
            return name.len;
    }
    return n;
}

/* The bytes of the first <chars> characters of the UTF-8 <name>. */
static size_t utf8_bytes(struct pt_str name, size_t chars)
{
    const unsigned char *p = (const unsigned char *)name.p, *end = p + name.len;

    for (; chars && p < end; chars--) {
        if (*p < 0x80)
            p++;
        else
            (void)utf8_decode(&p, (size_t)(end - p));
    }
    return (size_t)(p - (const unsigned char *)name.p);
}

/* One line of the HTML listing: the link, the name in 50 columns, the time, the size. */
static void html_entry(struct out *o, const struct listing *l, const struct entry *e)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char spaces[NAME_LEN + 1] = "                                                  ";
    /* Columns are bytes, or characters under charset utf-8 (nginx's r->headers_out.charset). */
    size_t width = l->utf8 ? utf8_width(e->name) : e->name.len;
    size_t shown = width > NAME_LEN ? NAME_LEN - 3 : width;
    time_t t = e->mtime + l->offset;
    struct tm tm;

    put_lit(o, "<a href=\"");
    put_uri_component(o, e->name);
    put_str(o, e->dir ? PT_STR("/\">") : PT_STR("\">"));
    put_html(o,
             (struct pt_str){e->name.p, width == e->name.len ? shown : utf8_bytes(e->name, shown)});
    if (width > NAME_LEN) {
        put_lit(o, "..&gt;</a>");
    } else {
        if (e->dir && width < NAME_LEN) {
            put_lit(o, "/");
            width++;
        }
        put_lit(o, "</a>");
        put(o, spaces, NAME_LEN - width);
    }
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    putf(o, " %02d-%s-%d %02d:%02d ", tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
         tm.tm_min);
    put_size(o, e, l->lc->autoindex_exact_size);
    put_lit(o, "\r\n");
}

static void html(struct out *o, const struct listing *l)
{
    put_lit(o, "<html>\r\n<head><title>Index of ");
    put_html(o, l->uri);
    put_lit(o, "</title></head>\r\n<body>\r\n<h1>Index of ");
    put_html(o, l->uri);
    put_lit(o, "</h1><hr><pre><a href=\"../\">../</a>\r\n");
    for (size_t i = 0; i < l->n; i++)
        html_entry(o, l, &l->e[i]);
    put_lit(o, "</pre><hr></body>\r\n</html>\r\n");
}

/* JSON, or JSONP with l->callback. */
static void json(struct out *o, const struct listing *l)
{
    char date[PT_HTTP_DATE_LEN];

    if (l->format == AUTOINDEX_JSONP) {
        put_lit(o, "/* callback */\r\n");
        put_str(o, l->callback);
        put_lit(o, "(");
    }
    put_lit(o, "[");
    for (size_t i = 0; i < l->n; i++) {
        const struct entry *e = &l->e[i];
        put_str(o, i ? PT_STR(",\r\n{ \"name\":\"") : PT_STR("\r\n{ \"name\":\""));
        put_json(o, e->name);
        put_lit(o, "\", \"type\":\"");
        put_str(o, pt_str_c(type_name(e)));
        put_lit(o, "\", \"mtime\":\"");
        put(o, date, pt_http_format_date(e->mtime, date));
        if (e->file)
            putf(o, "\", \"size\":%lld }", (long long)e->size);
        else
            put_lit(o, "\" }");
    }
    put_lit(o, "\r\n]");
    if (l->format == AUTOINDEX_JSONP)
        put_lit(o, ");");
}

static void xml(struct out *o, const struct listing *l)
{
    put_lit(o, "<?xml version=\"1.0\"?>\r\n<list>\r\n");
    for (size_t i = 0; i < l->n; i++) {
        const struct entry *e = &l->e[i];
        const char *type = type_name(e);
        struct tm tm;
        if (gmtime_r(&e->mtime, &tm) == NULL)
            memset(&tm, 0, sizeof(tm));
        putf(o, "<%s mtime=\"%4d-%02d-%02dT%02d:%02d:%02dZ", type, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (e->file)
            putf(o, "\" size=\"%lld", (long long)e->size);
        put_lit(o, "\">");
        put_html(o, e->name);
        putf(o, "</%s>\r\n", type);
    }
    put_lit(o, "</list>\r\n");
}

static void write_page(struct out *o, const struct listing *l)
{
    switch (l->format) {
    case AUTOINDEX_JSON:
    case AUTOINDEX_JSONP: json(o, l); break;
    case AUTOINDEX_XML: xml(o, l); break;
    default: html(o, l);
    }
}

/* The local zone's offset from GMT now, in whole minutes, as nginx's cached gmtoff: one
 * offset for every time of the listing. */
static long local_offset(void)
{
    time_t now = pt_time_sec();
    struct tm tm;

    if (localtime_r(&now, &tm) == NULL)
        return 0;
    return tm.tm_gmtoff / 60 * 60;
}

/* Makes l->page in r's pool: measured, then written.  PT_OK or PT_ERROR. */
static int make_page(struct pt_request *r, struct listing *l)
{
    struct out o = {NULL, 0};

    l->offset = l->lc->autoindex_localtime ? local_offset() : 0;
    write_page(&o, l);
    if ((o.p = pt_pnalloc(r->pool, o.n)) == NULL)
        return PT_ERROR;
    o.n = 0;
    write_page(&o, l);
    l->page = (struct pt_str){o.p, o.n};
    return PT_OK;
}

/* ---- the directory ----------------------------------------------------------------------- */

/* Directories first, then by name (nginx's ngx_http_autoindex_cmp_entries). */
static int entry_order(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->dir != y->dir)
        return x->dir ? -1 : 1;
    return strcmp(x->name.p, y->name.p);
}

/* The stat() of the entry <name> of the open directory <d> at <path>, as nginx takes it:
 * a dangling or looping symlink's own lstat().  PT_OK, PT_DECLINED for an entry to leave out
 * (EACCES), 500; the failures logged as nginx logs them. */
static int entry_stat(struct pt_request *r, DIR *d, const char *path, const char *name,
                      struct stat *st)
{
    int e;

    if (fstatat(dirfd(d), name, st, 0) == 0)
        return PT_OK;
    if ((e = errno) == ENOENT || e == ELOOP) {
        if (fstatat(dirfd(d), name, st, AT_SYMLINK_NOFOLLOW) == 0)
            return PT_OK;
        e = errno;
        pt_http_log(r, PT_LOG_CRIT, "lstat() \"%s/%s\" failed (%d: %s)", path, name, e,
                    strerror(e));
        return 500;
    }
    pt_http_log(r, PT_LOG_CRIT, "stat() \"%s/%s\" failed (%d: %s)", path, name, e, strerror(e));
    return e == EACCES ? PT_DECLINED : 500;
}

/* Adds the entry <name> of <st> to <l>: PT_OK or PT_ERROR. */
static int add_entry(struct pt_request *r, struct listing *l, const char *name,
                     const struct stat *st)
{
    struct entry *e;

    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        if ((e = pt_pnalloc(r->pool, cap * sizeof(*e))) == NULL)
            return PT_ERROR;
        if (l->n)
            memcpy(e, l->e, l->n * sizeof(*e));
        l->e = e;
        l->cap = cap;
    }
    e = &l->e[l->n];
    e->name = pt_str_c(pt_pstrdup(r->pool, name));
    if (e->name.p == NULL)
        return PT_ERROR;
    e->mtime = st->st_mtime;
    e->size = st->st_size;
    e->dir = S_ISDIR(st->st_mode);
    e->file = S_ISREG(st->st_mode);
    l->n++;
    return PT_OK;
}

/* Reads the entries of the open directory <d> at <path> into <l>, sorted: PT_OK, 500
 * (logged) or PT_ERROR. */
static int read_entries(struct pt_request *r, DIR *d, const char *path, struct listing *l)
{
    struct dirent *de;
    struct stat st;
    int rc;

    for (;;) {
        errno = 0;
        if ((de = readdir(d)) == NULL) {
            if (errno == 0)
                break;
            rc = errno;
            pt_http_log(r, PT_LOG_CRIT, "readdir() \"%s\" failed (%d: %s)", path, rc, strerror(rc));
            return 500;
        }
        if (de->d_name[0] == '.')
            continue;
        if ((rc = entry_stat(r, d, path, de->d_name, &st)) == PT_DECLINED)
            continue;
        if (rc != PT_OK)
            return rc;
        if (add_entry(r, l, de->d_name, &st) != PT_OK)
            return PT_ERROR;
    }
    if (l->n > 1)
        qsort(l->e, l->n, sizeof(*l->e), entry_order);
    return PT_OK;
}

/* ---- the answer -------------------------------------------------------------------------- */

/* The callback argument of a jsonp listing into *<cb> (empty without one): PT_OK, or 400 for
 * one nginx refuses (longer than 128 bytes, or with a byte but letters, digits, '_', '.'). */
static int jsonp_callback(struct pt_request *r, struct pt_str *cb)
{
    if (pt_var_value(r, "arg_callback", cb) != PT_OK) {
        *cb = PT_NULL_STR;
        return PT_OK;
    }
    if (cb->len > CALLBACK_MAX) {
        pt_http_log(r, PT_LOG_INFO, "client sent too long callback name: \"%.*s\"", (int)cb->len,
                    cb->p);
        return 400;
    }
    for (size_t i = 0; i < cb->len; i++) {
        char c = cb->p[i];
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            continue;
        if ((c >= '0' && c <= '9') || c == '_' || c == '.')
            continue;
        pt_http_log(r, PT_LOG_INFO, "client sent invalid callback name: \"%.*s\"", (int)cb->len,
                    cb->p);
        return 400;
    }
    return PT_OK;
}

static void send_more(struct pt_request *r);

/* Sends what is left of the page while the client takes it: PT_OK once all went, PT_AGAIN,
 * PT_ERROR. */
static int send_page(struct pt_request *r, struct listing *l)
{
    while (l->sent < l->page.len) {
        size_t n = pt_min(l->page.len - l->sent, SEND_CHUNK);
        if (pt_http_output_blocked(r)) {
            r->write_handler = send_more;
            return PT_AGAIN;
        }
        l->sent += n;
        if (pt_http_send_body(r, l->page.p + l->sent - n, n, l->sent == l->page.len) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}

static void send_more(struct pt_request *r)
{
    int rc = send_page(r, r->ctx[pt_static_module.index]);

    if (rc != PT_AGAIN)
        pt_http_finalize(r, rc);
}

/* Whether the Content-Type that the header filters left names the charset utf-8 (in any
 * case), as nginx's r->headers_out.charset then does. */
static int charset_is_utf8(struct pt_request *r)
{
    struct pt_header *h = pt_header_find(&r->out, "Content-Type");
    const char *v;

    if (h == NULL)
        return 0;
    for (v = h->value.p + h->value.len; v > h->value.p && v[-1] != '='; v--)
        ;
    return v - h->value.p >= 8 && strncasecmp(v - 8, "charset=", 8) == 0 &&
           pt_str_ieq((struct pt_str){v, (size_t)(h->value.p + h->value.len - v)}, "utf-8");
}

/* The listing's Content-Type, as nginx sets it. */
static struct pt_str content_type(int format)
{
    switch (format) {
    case AUTOINDEX_JSON: return PT_STR("application/json");
    case AUTOINDEX_JSONP: return PT_STR("application/javascript");
    case AUTOINDEX_XML: return PT_STR("text/xml; charset=utf-8");
    default: return PT_STR("text/html");
    }
}

/* Opens the directory <path>: the DIR, or NULL with *<rc> 404, 403 or 500 (logged). */
static DIR *open_dir(struct pt_request *r, const char *path, int *rc)
{
    DIR *d = opendir(path);
    int e = errno;

    if (d)
        return d;
    *rc = e == ENOENT || e == ENOTDIR || e == ENAMETOOLONG ? 404 : e == EACCES ? 403 : 500;
    pt_http_log(r, *rc == 500 ? PT_LOG_CRIT : PT_LOG_ERR, "opendir() \"%s\" failed (%d: %s)", path,
                e, strerror(e));
    return NULL;
}

int pt_static_autoindex(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str dir)
{
    struct listing *l = pt_palloc(r->pool, sizeof(*l));
    int head = r->h.method_id == PT_HTTP_HEAD, rc;
    char *path;
    DIR *d;

    if (l == NULL)
        return PT_ERROR;
    l->lc = lc;
    l->format = lc->autoindex_format;
    if (l->format == AUTOINDEX_JSONP) {
        if ((rc = jsonp_callback(r, &l->callback)) != PT_OK)
            return rc;
        if (l->callback.len == 0)
            l->format = AUTOINDEX_JSON;
    }
    if ((rc = pt_static_decode_uri(r, r->uri, &l->uri)) != PT_OK)
        return rc;
    /* The directory's path without its slash, as nginx names it in its log lines. */
    if ((path = pt_pstrndup(r->pool, dir.p, dir.len > 1 ? dir.len - 1 : dir.len)) == NULL)
        return PT_ERROR;
    if ((d = open_dir(r, path, &rc)) == NULL)
        return rc;
    /* HEAD: the directory opened (its errors are GET's), not read, as nginx. */
    rc = head ? PT_OK : read_entries(r, d, path, l);
    closedir(d);
    if (rc != PT_OK)
        return rc;
    r->status = 200;
    r->out_length = -1;
    if (pt_header_add(r, &r->out, PT_STR("Content-Type"), content_type(l->format)) != PT_OK ||
        pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    if (head)
        return pt_http_send_body(r, NULL, 0, 1);
    /* The page is made after the header filters, as nginx makes it after sending the header:
     * the charset they gave the answer sets how names are measured. */
    l->utf8 = charset_is_utf8(r);
    if (make_page(r, l) != PT_OK)
        return PT_ERROR;
    r->ctx[pt_static_module.index] = l;
    return send_page(r, l);
}
