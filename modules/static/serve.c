/*
 * serve.c: files from root or alias, as nginx's static, index, not_modified and range
 * modules answer them.
 *
 * The URI (normalized once for routing: dot segments resolved, no "..") is appended to
 * root, or replaces the location's prefix in alias, so a path never leaves the directory.
 * A URI ending in '/' tries the index files, each by an internal redirect as nginx; a
 * directory asked without its slash gets 301 to it.  Validators are nginx's: Last-Modified
 * from the file's mtime and the strong ETag "MTIME-SIZE" in hex; the preconditions follow
 * nginx's not_modified filter (If-Modified-Since compared exactly, If-None-Match weakly);
 * ranges are ranges.c's.  The answer is a list of pieces (the file's bytes, a multipart's
 * part heads) read and sent while the client takes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/http_date.h"
#include "core/log.h"
#include "core/pool.h"
#include "modules/static/static.h"

static int hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/*
 * The file system's name for <uri>: every %XX decoded, as nginx's URI is (routing kept the
 * escapes of reserved characters, %2F among them).  400 for a name that is not one: a NUL,
 * or a "." or ".." segment, which only an escaped slash can have made here (the normalizer
 * resolved those written as such), so that no escape leads out of the root.
 */
int pt_static_decode_uri(struct pt_request *r, struct pt_str uri, struct pt_str *out)
{
    char *p = pt_pnalloc(r->pool, uri.len + 1);
    size_t n = 0;

    if (p == NULL)
        return PT_ERROR;
    for (size_t i = 0; i < uri.len; i++) {
        int h, l;
        if (uri.p[i] == '%' && i + 2 < uri.len && (h = hex(uri.p[i + 1])) >= 0 &&
            (l = hex(uri.p[i + 2])) >= 0) {
            p[n++] = (char)(h << 4 | l);
            i += 2;
        } else {
            p[n++] = uri.p[i];
        }
        if (p[n - 1] == '\0')
            return 400;
    }
    p[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t k = i + 1;
        if (p[i] != '/')
            continue;
        while (k < n && p[k] == '.')
            k++;
        if ((k - i - 1 == 1 || k - i - 1 == 2) && (k == n || p[k] == '/'))
            return 400;
    }
    *out = (struct pt_str){p, n};
    return PT_OK;
}

int pt_static_map_uri(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str uri,
                      struct pt_str *path)
{
    struct pt_str base;
    char *p;
    int rc;

    if ((rc = pt_static_decode_uri(r, uri, &uri)) != PT_OK)
        return rc;
    if (pt_template_eval(r, lc->root, &base) != PT_OK)
        return PT_ERROR;
    if (lc->alias && lc->alias_whole) {
        *path = base;
        return PT_OK;
    }
    if (lc->alias && uri.len >= lc->loc_prefix.len &&
        memcmp(uri.p, lc->loc_prefix.p, lc->loc_prefix.len) == 0) {
        uri.p += lc->loc_prefix.len;
        uri.len -= lc->loc_prefix.len;
    }
    if ((p = pt_pnalloc(r->pool, base.len + uri.len + 1)) == NULL)
        return PT_ERROR;
    memcpy(p, base.p, base.len);
    memcpy(p + base.len, uri.p, uri.len);
    p[base.len + uri.len] = '\0';
    *path = (struct pt_str){p, base.len + uri.len};
    return PT_OK;
}

/* The answer to a file that could not be opened, as nginx's: 404 for one that is not there,
 * 403 for one the workers may not read or a symbolic link refused, else 500; logged with
 * the errno, never shown to the client. */
static int open_failed(struct pt_request *r, const char *path, int err)
{
    int missing = err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG;
    int forbidden = err == EACCES || err == ELOOP || err == EMLINK;

    pt_http_log(r, missing || forbidden ? PT_LOG_ERR : PT_LOG_CRIT, "open() \"%s\" failed (%d: %s)",
                path, err, strerror(err));
    return missing ? 404 : forbidden ? 403 : 500;
}

/* ---- index ------------------------------------------------------------------------------- */

/* A URI ending in '/': the first index file that exists, by an internal redirect; for a
 * directory without one, its listing with autoindex on, else 403; 404 when the directory is
 * not there.  POST too, as nginx's index module: the redirect leads to a file, which answers
 * it 405; nginx's autoindex lists for GET and HEAD only, so a POST without an index is 403. */
static int serve_index(struct pt_request *r, const struct static_loc_conf *lc, struct pt_str dir)
{
    struct open_file of;

    for (int i = 0; i < lc->nindex; i++) {
        size_t n = strlen(lc->index[i]);
        char *file = pt_pnalloc(r->pool, dir.len + n + 1), *uri;
        if (file == NULL)
            return PT_ERROR;
        memcpy(file, dir.p, dir.len);
        memcpy(file + dir.len, lc->index[i], n + 1);
        if (pt_static_open(r, lc, (struct pt_str){file, dir.len + n}, 1, &of) != PT_OK)
            return PT_ERROR;
        if (of.err == ENOENT || of.err == ENOTDIR)
            continue;
        if (of.err)
            return open_failed(r, file, of.err);
        if ((uri = pt_pnalloc(r->pool, r->uri.len + n + 1 + r->args.len + 1)) == NULL)
            return PT_ERROR;
        memcpy(uri, r->uri.p, r->uri.len);
        memcpy(uri + r->uri.len, lc->index[i], n);
        n += r->uri.len;
        if (r->h.has_query) {
            uri[n++] = '?';
            memcpy(uri + n, r->args.p, r->args.len);
            n += r->args.len;
        }
        return pt_http_internal_redirect(r, (struct pt_str){uri, n});
    }
    if (pt_static_open(r, lc, dir, 1, &of) != PT_OK)
        return PT_ERROR;
    if (of.err || !S_ISDIR(of.st.st_mode)) {
        pt_http_log(r, PT_LOG_ERR, "\"%s\" is not found", dir.p);
        return 404;
    }
    if (lc->autoindex && r->h.method_id != PT_HTTP_POST)
        return pt_static_autoindex(r, lc, dir);
    pt_http_log(r, PT_LOG_ERR, "directory index of \"%s\" is forbidden", dir.p);
    return 403;
}

/* ---- preconditions (nginx's not_modified filter) ------------------------------------------ */

/* nginx's ngx_http_test_if_match: whether the list <v> names <etag>, weakly or not. */
static int etag_listed(struct pt_str v, struct pt_str etag, int weak)
{
    const char *p = v.p, *end = v.p + v.len;

    if (v.len == 1 && v.p[0] == '*')
        return 1;
    if (etag.len >= 2 && etag.p[0] == 'W' && etag.p[1] == '/') {
        if (!weak)
            return 0;
        etag.p += 2;
        etag.len -= 2;
    }
    while (p < end) {
        if (weak && end - p > 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if (etag.len > (size_t)(end - p))
            return 0;
        if (memcmp(p, etag.p, etag.len) == 0) {
            p += etag.len;
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
            if (p == end || *p == ',')
                return 1;
        }
        while (p < end && *p != ',')
            p++;
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
    }
    return 0;
}

static struct pt_str field(struct pt_request *r, const char *name)
{
    const struct pt_http_header *h = pt_http_find_header(r->h.headers, r->h.nheaders, name);

    return h ? h->value : PT_NULL_STR;
}

/* 412, 304, or 0 for the file answer itself. */
static int preconditions(struct pt_request *r, time_t mtime, struct pt_str etag)
{
    struct pt_str ius = field(r, "If-Unmodified-Since"), im = field(r, "If-Match");
    struct pt_str ims = field(r, "If-Modified-Since"), inm = field(r, "If-None-Match");

    if (ius.p && pt_http_parse_date(ius, mtime) < mtime)
        return 412;
    if (im.p && !etag_listed(im, etag, 0))
        return 412;
    if (!ims.p && !inm.p)
        return 0;
    /* if_modified_since exact, nginx's default: only the very date is "not modified". */
    if (ims.p && pt_http_parse_date(ims, mtime) != mtime)
        return 0;
    if (inm.p && !etag_listed(inm, etag, 1))
        return 0;
    return 304;
}

/* ---- ranges ----------------------------------------------------------------------------- */

/* Whether If-Range lets a Range apply: its entity-tag is the file's exactly, or its date
 * the file's mtime (nginx). */
static int if_range_holds(struct pt_request *r, time_t mtime, struct pt_str etag)
{
    struct pt_str v = field(r, "If-Range");

    if (v.p == NULL)
        return 1;
    if (v.len >= 2 && v.p[v.len - 1] == '"')
        return v.len == etag.len && memcmp(v.p, etag.p, v.len) == 0;
    return pt_http_parse_date(v, mtime) == mtime;
}

/* ---- the answer -------------------------------------------------------------------------- */

/* <n> bytes of <s> copied into r's pool; p NULL when out of memory. */
static struct pt_str copy(struct pt_request *r, const char *s, size_t n)
{
    char *p = pt_pstrndup(r->pool, s, n);

    return (struct pt_str){p, p ? n : 0};
}

/* Adds the response field <name>: <value> (PT_ERROR for a value a copy failed to make). */
static int add(struct pt_request *r, const char *name, struct pt_str value)
{
    if (value.p == NULL)
        return PT_ERROR;
    return pt_header_add(r, &r->out, pt_str_c(name), value);
}

static void send_more(struct pt_request *r);

/* Sends the pieces while the client takes them: PT_OK when all went, PT_AGAIN, PT_ERROR. */
static int send_pieces(struct pt_request *r, struct file_ctx *f)
{
    while (f->cur < f->npieces) {
        struct piece *pc = &f->pieces[f->cur];
        int last = f->cur == f->npieces - 1;
        ssize_t sent;
        if (pt_http_output_blocked(r)) {
            pt_http_wait_output(r, send_more);
            return PT_AGAIN;
        }
        if (pc->text.p || pc->len == 0) {
            f->cur++;
            if (pt_http_send_body(r, pc->text.p, pc->text.len, last) != PT_OK)
                return PT_ERROR;
            continue;
        }
        sent = pt_http_send_file_part(r, f->fd, f->path, pc->off, pc->len, last, &f->buf);
        if (sent == PT_AGAIN) {
            pt_http_wait_output(r, send_more);
            return PT_AGAIN;
        }
        if (sent <= 0)
            return PT_ERROR;
        pc->off += sent;
        pc->len -= sent;
        f->cur += pc->len == 0;
    }
    return PT_OK;
}

static void send_more(struct pt_request *r)
{
    int rc = send_pieces(r, r->ctx[pt_static_module.index]);

    if (rc != PT_AGAIN)
        pt_http_finalize(r, rc);
}

/* The ranges asked for, once the header filters have run: none when they made the answer
 * another one (gzip compressing it: no length any more), as nginx's range filter. */
static int apply_ranges(struct pt_request *r)
{
    struct file_ctx *f = r->ctx[pt_static_module.index];
    int rc;

    if (r->status != 200 || r->out_length != f->size)
        return PT_OK;
    if ((rc = pt_static_ranges(r, f->range, f->size, f)) != PT_OK)
        return rc == 416 ? PT_OK : rc; /* checked before: not again */
    r->out_length = 0;
    for (int i = 0; i < f->npieces; i++)
        r->out_length += f->pieces[i].text.p ? (int64_t)f->pieces[i].text.len : f->pieces[i].len;
    return PT_OK;
}

/* 416 with the size the client may ask within, and nginx's page. */
static int not_satisfiable(struct pt_request *r, int64_t size)
{
    char cr[48];
    struct pt_str page;
    int n = snprintf(cr, sizeof(cr), "bytes */%lld", (long long)size);

    r->out.n = 0;
    r->status = 416;
    page = pt_http_error_page(r, 416);
    if (add(r, "Content-Type", PT_STR("text/html")) != PT_OK ||
        add(r, "Content-Range", copy(r, cr, (size_t)n)) != PT_OK)
        return PT_ERROR;
    r->out_length = (int64_t)page.len;
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    return pt_http_send_body(r, page.p, page.len, 1);
}

/* Answers the open regular file <f> of <st> for <path>: fields, preconditions, a range. */
static int answer(struct pt_request *r, const struct static_loc_conf *lc, struct file_ctx *f,
                  const struct stat *st, struct pt_str path)
{
    char date[PT_HTTP_DATE_LEN], tag[48];
    struct pt_str etag, range = field(r, "Range");
    int64_t size = st->st_size;
    int n, rc;

    n = snprintf(tag, sizeof(tag), "\"%llx-%llx\"", (unsigned long long)st->st_mtime,
                 (unsigned long long)size);
    etag = copy(r, tag, (size_t)n);
    r->status = 200;
    if (add(r, "Content-Type", pt_static_type(r, lc, path)) != PT_OK ||
        add(r, "Last-Modified", copy(r, date, pt_http_format_date(st->st_mtime, date))) != PT_OK ||
        add(r, "ETag", etag) != PT_OK)
        return PT_ERROR;
    if ((rc = preconditions(r, st->st_mtime, etag)) == 412)
        return 412;
    if (rc == 304) {
        pt_header_remove(&r->out, "Content-Type");
        pt_header_remove(&r->out, "Content-Encoding"); /* a precompressed file's (nginx) */
        r->status = 304;
        r->out_length = -1;
        return pt_http_send_header(r) == PT_OK ? pt_http_send_body(r, NULL, 0, 1) : PT_ERROR;
    }
    f->pieces = &f->whole;
    f->npieces = 1;
    f->whole = (struct piece){PT_NULL_STR, 0, size};
    if (!f->gz && add(r, "Accept-Ranges", PT_STR("bytes")) != PT_OK)
        return PT_ERROR;
    r->out_length = size;
    if (!f->gz && range.len >= 7 && strncasecmp(range.p, "bytes=", 6) == 0 &&
        if_range_holds(r, st->st_mtime, etag)) {
        f->range = (struct pt_str){range.p + 6, range.len - 6};
        f->size = size;
        if (pt_static_ranges(r, f->range, size, NULL) == 416)
            return not_satisfiable(r, size);
        r->last_header_filter = apply_ranges;
    }
    if (pt_http_send_header(r) != PT_OK)
        return PT_ERROR;
    if (r->header_only)
        return pt_http_send_body(r, NULL, 0, 1);
    return send_pieces(r, f);
}

/* ---- gzip_static, brotli_static ------------------------------------------------------ */

/* Where the token <coding> starts in <ae> (at its start or after ',' or ' ', as nginx
 * looks), from <from> on: NULL when it is not there. */
static const char *find_token(struct pt_str ae, const char *from, const char *coding)
{
    size_t n = strlen(coding);

    for (const char *p = from; p + n <= ae.p + ae.len; p++)
        if (strncasecmp(p, coding, n) == 0 && (p == ae.p || p[-1] == ',' || p[-1] == ' '))
            return p;
    return NULL;
}

/* nginx's ngx_http_gzip_quantity of the q value at <p>, above 0 when it takes the coding:
 * "0" or "1", then up to three decimals, which it adds up ("0.001" is 1, "1.5" is 105 and
 * refused, as "2" is). */
static unsigned quantity(const char *p, const char *end)
{
    unsigned q, n = 0;

    if (p == end || (*p != '0' && *p != '1'))
        return 0;
    q = (unsigned)(*p++ - '0') * 100;
    if (p == end || *p == ',' || *p == ' ')
        return q;
    if (*p++ != '.')
        return 0;
    for (; p < end && *p != ',' && *p != ' '; p++, n++) {
        if (*p < '0' || *p > '9')
            return 0;
        q += (unsigned)(*p - '0');
    }
    return q > 100 || n > 3 ? 0 : q;
}

/* Whether <ae> takes gzip, read as nginx's ngx_http_gzip_accept_encoding reads it: "gzip"
 * then only spaces up to ',' or ';', and after ';' nothing but "q=" with a q above 0. */
static int accepts_gzip(struct pt_str ae)
{
    const char *end = ae.p + ae.len, *p = find_token(ae, ae.p, "gzip");

    if (p == NULL)
        return 0;
    for (p += 4; p < end && *p == ' '; p++)
        ;
    if (p == end || *p == ',')
        return 1;
    if (*p++ != ';')
        return 0;
    while (p < end && *p == ' ')
        p++;
    if (p == end)
        return 1;
    if ((*p != 'q' && *p != 'Q') || end - p < 3 || p[1] != '=')
        return 0;
    return quantity(p + 2, end) > 0;
}

/* Whether <ae> takes br, read as ngx_brotli's brotli_static reads it: each "br" standing as
 * a token counts unless a ";q=0" (".0", ".00", ".000") follows it; anything else after it
 * that is not such a q, however odd, takes br. */
static int accepts_br(struct pt_str ae)
{
    const char *end = ae.p + ae.len, *p = ae.p;

/* The byte at <p>, NUL past the end (ngx_brotli reads the value's terminating NUL). */
#define AT(p) ((p) < end ? *(p) : '\0')
    while ((p = find_token(ae, p, "br")) != NULL) {
        p += 2;
        if (AT(p) != ',' && AT(p) != ' ' && AT(p) != ';' && p < end)
            continue;
        while (AT(p) == ' ')
            p++;
        if (AT(p) != ';')
            return 1;
        for (p++; AT(p) == ' '; p++)
            ;
        if (AT(p) != 'q')
            return 1;
        for (p++; AT(p) == ' '; p++)
            ;
        if (AT(p) != '=')
            return 1;
        for (p++; AT(p) == ' '; p++)
            ;
        if (AT(p) != '0')
            return 1;
        p++;
        if (AT(p) != '.')
            return 0; /* ";q=0" */
        for (int i = 0; i < 3; i++) {
            char digit = AT(p + 1 + i);
            if (digit < '0' || digit > '9')
                return 0; /* ";q=0.", ";q=0.0," ... */
            if (digit > '0')
                return 1;
        }
        return 0; /* ";q=0.000" */
    }
#undef AT
    return 0;
}

/* The precompressed forms, the first that applies wins: ngx_brotli's brotli_static (any
 * client taking br), then nginx's gzip_static (with its gzip_ok defaults: HTTP/1.1, not
 * through a proxy, as gzip_proxied off). */
static const struct precompressed {
    const char *coding, *suffix;
    size_t conf;                      /* the setting's offset in static_loc_conf */
    int (*accepts)(struct pt_str ae); /* how its module reads Accept-Encoding */
    int http11_direct;                /* only HTTP/1.1 clients not behind a proxy (Via) */
} precompressed[] = {
    {"br", ".br", offsetof(struct static_loc_conf, brotli_static), accepts_br, 0},
    {"gzip", ".gz", offsetof(struct static_loc_conf, gzip_static), accepts_gzip, 1},
};

static int takes(struct pt_request *r, const struct precompressed *pc)
{
    struct pt_str ae = field(r, "Accept-Encoding");

    if (pc->http11_direct && (r->h.version < 11 || field(r, "Via").p))
        return 0;
    return ae.p && pc->accepts(ae);
}

/* Looks for a precompressed form of <path> the client takes: PT_OK with f->fd open on it
 * and <of> its file (f->fd -1: none, the file itself is sent), 404 for one that is no
 * regular file (as nginx), or PT_ERROR.  A form that cannot be opened is passed over. */
static int open_precompressed(struct pt_request *r, const struct static_loc_conf *lc,
                              struct pt_str path, struct file_ctx *f, struct open_file *of)
{
    for (size_t i = 0; i < sizeof(precompressed) / sizeof(precompressed[0]); i++) {
        const struct precompressed *pc = &precompressed[i];
        int mode = *(const int *)((const char *)lc + pc->conf);
        char *name;
        if (mode == GZIP_STATIC_OFF || (mode != GZIP_STATIC_ALWAYS && !takes(r, pc)))
            continue;
        if ((name = pt_pnalloc(r->pool, path.len + 4)) == NULL)
            return PT_ERROR;
        memcpy(name, path.p, path.len);
        memcpy(name + path.len, pc->suffix, 4);
        if (pt_static_open(r, lc, (struct pt_str){name, path.len + 3}, 0, of) != PT_OK)
            return PT_ERROR;
        if (of->err) {
            if (of->err != ENOENT && of->err != ENOTDIR && of->err != ENAMETOOLONG)
                pt_http_log(r, of->err == EACCES ? PT_LOG_ERR : PT_LOG_CRIT,
                            "open() \"%s\" failed (%d: %s)", name, of->err, strerror(of->err));
            continue;
        }
        if (!S_ISREG(of->st.st_mode)) {
            pt_http_log(r, PT_LOG_CRIT, "\"%s\" is not a regular file", name);
            return 404;
        }
        f->fd = of->fd;
        f->gz = 1;
        return pt_header_add(r, &r->out, PT_STR("Content-Encoding"), pt_str_c(pc->coding));
    }
    return PT_OK;
}

/* The 301 to the directory <r>'s URI names, with its slash (and the query). */
static int to_directory(struct pt_request *r)
{
    size_t n = r->uri.len + 1 + (r->h.has_query ? 1 + r->args.len : 0);
    char *p = pt_pnalloc(r->pool, n);
    struct pt_str loc;

    if (p == NULL)
        return PT_ERROR;
    memcpy(p, r->uri.p, r->uri.len);
    p[r->uri.len] = '/';
    if (r->h.has_query) {
        p[r->uri.len + 1] = '?';
        memcpy(p + r->uri.len + 2, r->args.p, r->args.len);
    }
    loc = pt_http_redirect_location(r, (struct pt_str){p, n});
    if (loc.p == NULL || add(r, "Location", loc) != PT_OK)
        return PT_ERROR;
    return 301;
}

int pt_static_handler(struct pt_request *r)
{
    const struct static_loc_conf *lc = pt_http_loc_conf(r, pt_static_module);
    struct file_ctx *f;
    struct open_file of;
    struct pt_str path;
    int method = r->h.method_id, rc;

    if (method != PT_HTTP_GET && method != PT_HTTP_HEAD && method != PT_HTTP_POST)
        return 405;
    if ((rc = pt_static_map_uri(r, lc, r->uri, &path)) != PT_OK)
        return rc;
    if (path.len && path.p[path.len - 1] == '/')
        return serve_index(r, lc, path);
    if ((f = pt_palloc(r->pool, sizeof(*f))) == NULL)
        return PT_ERROR;
    f->fd = -1;
    if (method != PT_HTTP_POST && (rc = open_precompressed(r, lc, path, f, &of)) != PT_OK)
        return rc;
    if (f->fd < 0) {
        if (pt_static_open(r, lc, path, 0, &of) != PT_OK)
            return PT_ERROR;
        if (of.err)
            return open_failed(r, path.p, of.err);
        f->fd = of.fd;
    }
    if (S_ISDIR(of.st.st_mode))
        return to_directory(r);
    if (!S_ISREG(of.st.st_mode))
        return 404;
    if (method == PT_HTTP_POST)
        return 405;
    f->path = path.p;
    r->ctx[pt_static_module.index] = f;
    return answer(r, lc, f, &of.st, path);
}
