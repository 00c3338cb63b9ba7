/*
 * access_log.c: the access_log module: log_format and access_log, nginx's meanings.
 *
 * Files are opened by the master while it reads the configuration (files.h); workers
 * write through the inherited descriptors.  Formats are compiled in postconfig, once every
 * module has registered its variables, so log_format and access_log may come in any order
 * and name variables of any module.  Each line is rendered into a stack buffer and written
 * with one write(), or appended to a per-worker buffer with "buffer=SIZE".  A "syslog:..."
 * target sends each line as one datagram instead (syslog.h), never waiting for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/files.h"
#include "worker/http.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/syslog.h"
#include "core/times.h"
#include "worker/var.h"
#include "worker/var_http.h"

/* Longest line written; longer ones are cut (the newline is kept). */
#define LOG_LINE_MAX 8192
/* nginx's buffer when only flush= is given. */
#define LOG_DEFAULT_BUFFER 65536

#define COMBINED_FORMAT                                                                \
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent " \
    "\"$http_referer\" \"$http_user_agent\""

struct log_format {
    const char *name;
    const char *src;
    enum pt_escape esc;
    const struct pt_conf_setting *setting; /* for errors found when compiling in postconfig */
    struct pt_template *tpl;
    struct log_format *next;
};

struct access_log {
    struct pt_file *file;     /* NULL when the log goes to syslog */
    struct pt_syslog *syslog; /* its own socket in each worker */
    const char *format_name;
    struct log_format *format; /* resolved in postconfig */
    int64_t buffer_size;       /* 0: one write() per line */
    int64_t flush_ms;          /* 0: buffered lines wait until the buffer fills */
    const struct pt_conf_setting *setting;
    struct access_log *next_all; /* every log of the cycle */

    /* Per worker, set up in init_worker. */
    char *data;
    size_t len;
    struct pt_timer timer;
};

/* The logs of one context; shared by the contexts that inherit it. */
struct log_list {
    struct access_log **logs;
    int n;
    unsigned off : 1;
};

struct log_main_conf {
    struct log_format *formats;
    struct access_log *all;
    struct log_list *default_list; /* logs/access.log combined, made when first inherited */
};

struct log_loc_conf {
    struct log_list *list; /* NULL: not set here, inherit */
};

static int set_log_format(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_access_log(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const struct pt_directive access_log_directives[] = {
    {"log_format", PT_CTX_HTTP, PT_DIR_BLOCK, PT_MAIN_CONF, set_log_format, 0, NULL,
     "a group of named formats: { NAME = \"[escape=default|json|none ]FORMAT\"; ... }; "
     "\"combined\" is predefined"},
    {"access_log", PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC, PT_DIR_MULTI, PT_LOC_CONF, set_access_log,
     0, NULL,
     "\"PATH [FORMAT] [buffer=SIZE] [flush=TIME]\" or \"off\" (default logs/access.log "
     "combined); PATH may be syslog:server=ADDR[:PORT]|unix:/path[,facility=local7]"
     "[,severity=info][,tag=portier][,nohostname], nginx's syslog parameters (not buffered)"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

extern struct pt_module pt_access_log_module;

static struct log_main_conf *main_conf(struct pt_conf *cf)
{
    return pt_cycle_main_conf(cf->cycle, pt_access_log_module);
}

static struct log_format *find_format(struct log_main_conf *mc, const char *name)
{
    for (struct log_format *f = mc->formats; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static struct log_format *add_format(struct pt_conf *cf, struct log_main_conf *mc, const char *name,
                                     const char *src, enum pt_escape esc)
{
    struct log_format *f = pt_palloc(cf->pool, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->name = name;
    f->src = src;
    f->esc = esc;
    f->setting = cf->setting;
    f->next = mc->formats;
    mc->formats = f;
    return f;
}

static void *create_main_conf(struct pt_conf *cf)
{
    struct log_main_conf *mc = pt_palloc(cf->pool, sizeof(*mc));

    if (mc == NULL || add_format(cf, mc, "combined", COMBINED_FORMAT, PT_ESCAPE_DEFAULT) == NULL)
        return NULL;
    mc->formats->setting = NULL;
    return mc;
}

static void *create_loc_conf(struct pt_conf *cf)
{
    return pt_palloc(cf->pool, sizeof(struct log_loc_conf));
}

/* --- log_format --- */

/* The format text of member <m>: a string, or a list of strings joined (long formats read
 * better split over lines, as nginx's several quoted strings do). */
static const char *format_source(struct pt_conf *cf, const struct pt_conf_setting *m)
{
    enum pt_conf_kind kind = pt_conf_setting_kind(m);
    size_t len = 0;
    int n = pt_conf_setting_count(m);
    char *src;

    if (kind == PT_CONF_STRING)
        return pt_conf_setting_string(m);
    if (kind != PT_CONF_ARRAY && kind != PT_CONF_LIST)
        return NULL;
    for (int i = 0; i < n; i++) {
        const char *s = pt_conf_setting_string(pt_conf_setting_elem(m, i));
        if (s == NULL)
            return NULL;
        len += strlen(s);
    }
    if ((src = pt_palloc(cf->pool, len + 1)) == NULL)
        return NULL;
    for (int i = 0; i < n; i++)
        strcat(src, pt_conf_setting_string(pt_conf_setting_elem(m, i)));
    return src;
}

/* Takes a leading "escape=default|json|none " off *<src> into *<esc>.  PT_OK or PT_ERROR. */
static int parse_escape(const char **src, enum pt_escape *esc)
{
    static const struct {
        const char *name;
        enum pt_escape esc;
    } names[] = {
        {"default", PT_ESCAPE_DEFAULT}, {"json", PT_ESCAPE_JSON}, {"none", PT_ESCAPE_NONE}};
    const char *s = *src;

    *esc = PT_ESCAPE_DEFAULT;
    if (strncmp(s, "escape=", 7) != 0)
        return PT_OK;
    s += 7;
    for (size_t i = 0; i < pt_nelems(names); i++) {
        size_t n = strlen(names[i].name);
        if (strncmp(s, names[i].name, n) == 0 && (s[n] == ' ' || s[n] == '\0')) {
            *esc = names[i].esc;
            for (s += n; *s == ' ';)
                s++;
            *src = s;
            return PT_OK;
        }
    }
    return PT_ERROR;
}

static int set_log_format(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    const struct pt_conf_setting *g = cf->setting;
    struct log_main_conf *mc = conf;

    pt_unused(d);
    if (pt_conf_setting_kind(g) != PT_CONF_GROUP)
        return pt_conf_error(cf, "\"log_format\" takes a group: { NAME = \"FORMAT\"; ... }");
    for (int i = 0; i < pt_conf_setting_count(g); i++) {
        const struct pt_conf_setting *m = pt_conf_setting_elem(g, i);
        const char *name = pt_conf_setting_name(m), *src = format_source(cf, m);
        enum pt_escape esc;

        cf->setting = m;
        if (src == NULL)
            return pt_conf_error(cf, "log_format \"%s\" takes a string or a list of strings", name);
        if (find_format(mc, name))
            return pt_conf_error(cf, "duplicate log_format \"%s\"", name);
        if (parse_escape(&src, &esc) != PT_OK)
            return pt_conf_error(cf,
                                 "invalid escape in log_format \"%s\": use escape=default, "
                                 "escape=json or escape=none",
                                 name);
        if (add_format(cf, mc, pt_pstrdup(cf->pool, name), pt_pstrdup(cf->pool, src), esc) == NULL)
            return pt_conf_error(cf, "out of memory");
    }
    cf->setting = g;
    return PT_OK;
}

/* --- access_log --- */

/* The "syslog:..." target <path> of <log>, parsed and resolved now as nginx does (its
 * defaults, but for the tag: portier's name). */
static int open_syslog(struct pt_conf *cf, struct access_log *log, const char *path)
{
    char err[512];

    if ((log->syslog = pt_palloc(cf->pool, sizeof(*log->syslog))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (pt_syslog_parse(log->syslog, path + 7, "portier", 6, err, sizeof(err)) != PT_OK)
        return pt_conf_error(cf, "%s", err);
    return PT_OK;
}

/* A log writing to <path> (<what> names it in errors). */
static struct access_log *new_log(struct pt_conf *cf, const char *path, const char *what)
{
    struct log_main_conf *mc = main_conf(cf);
    struct access_log *log = pt_palloc(cf->pool, sizeof(*log));

    if (log == NULL) {
        pt_conf_error(cf, "out of memory");
        return NULL;
    }
    if (pt_syslog_is_target(path)) {
        if (open_syslog(cf, log, path) != PT_OK)
            return NULL;
    } else if ((path = pt_conf_path(cf, path)) == NULL) {
        pt_conf_error(cf, "out of memory");
        return NULL;
    } else if ((log->file = pt_file_open(cf->cycle, path)) == NULL) {
        pt_conf_open_failed(cf, what, path, errno);
        return NULL;
    }
    log->format_name = "combined";
    log->setting = cf->setting;
    log->next_all = mc->all;
    mc->all = log;
    return log;
}

static int list_add(struct pt_conf *cf, struct log_list *l, struct access_log *log)
{
    struct access_log **a = pt_palloc(cf->pool, (size_t)(l->n + 1) * sizeof(*a));

    if (a == NULL)
        return pt_conf_error(cf, "out of memory");
    if (l->n)
        memcpy(a, l->logs, (size_t)l->n * sizeof(*a));
    a[l->n++] = log;
    l->logs = a;
    return PT_OK;
}

/* Reads the words after the path: [FORMAT] [buffer=SIZE] [flush=TIME]. */
static int log_options(struct pt_conf *cf, struct access_log *log, char **w, int n)
{
    for (int i = 1; i < n; i++) {
        if (strncmp(w[i], "buffer=", 7) == 0) {
            if (pt_parse_size(w[i] + 7, &log->buffer_size) != PT_OK || log->buffer_size < 1)
                return pt_conf_error(cf, "invalid \"%s\" (use buffer=SIZE, like 64k)", w[i]);
        } else if (strncmp(w[i], "flush=", 6) == 0) {
            if (pt_parse_msec(w[i] + 6, &log->flush_ms) != PT_OK || log->flush_ms < 1)
                return pt_conf_error(cf, "invalid \"%s\" (use flush=TIME, like 5s)", w[i]);
        } else if (i == 1) {
            log->format_name = w[i];
        } else {
            return pt_conf_error(cf,
                                 "invalid access_log parameter \"%s\" (use \"PATH [FORMAT] "
                                 "[buffer=SIZE] [flush=TIME]\")",
                                 w[i]);
        }
    }
    if (log->flush_ms && log->buffer_size == 0)
        log->buffer_size = LOG_DEFAULT_BUFFER;
    /* A datagram is a line: there is nothing to gather, as nginx says. */
    if (log->syslog && log->buffer_size)
        return pt_conf_error(cf, "logs to syslog cannot be buffered");
    return PT_OK;
}

static int set_access_log(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct log_loc_conf *llc = conf;
    struct access_log *log;
    char *w[5];
    int n, off = strcmp(cf->value, "off") == 0;

    pt_unused(d);
    if (llc->list == NULL && (llc->list = pt_palloc(cf->pool, sizeof(*llc->list))) == NULL)
        return pt_conf_error(cf, "out of memory");
    if ((off && llc->list->n) || (!off && llc->list->off))
        return pt_conf_error(cf, "access_log \"off\" cannot be combined with other logs here");
    if (off) {
        llc->list->off = 1;
        return PT_OK;
    }
    n = pt_conf_split(cf, cf->value, w, 5);
    if (n < 1)
        return pt_conf_error(cf, "\"access_log\" takes \"PATH [FORMAT] [buffer=SIZE] "
                                 "[flush=TIME]\" or \"off\"");
    if ((log = new_log(cf, w[0], "access log")) == NULL || log_options(cf, log, w, n) != PT_OK)
        return PT_ERROR;
    return list_add(cf, llc->list, log);
}

/* nginx's default when no level names a log: logs/access.log in combined. */
static struct log_list *default_list(struct pt_conf *cf)
{
    struct log_main_conf *mc = main_conf(cf);
    struct log_list *l;
    struct access_log *log;

    if (mc->default_list)
        return mc->default_list;
    l = pt_palloc(cf->pool, sizeof(*l));
    /* Errors point at the block being merged (http), where an access_log would go. */
    if (l && (log = new_log(cf, "logs/access.log", "the default access log")) != NULL &&
        list_add(cf, l, log) == PT_OK)
        mc->default_list = l;
    return mc->default_list;
}

static int merge_loc_conf(struct pt_conf *cf, void *parent, void *child)
{
    struct log_loc_conf *p = parent, *c = child;

    if (c->list)
        return PT_OK;
    c->list = p->list ? p->list : default_list(cf);
    return c->list ? PT_OK : PT_ERROR;
}

/* --- writing --- */

/* Reports that a line of the log named <name> was lost (<why>), at most once a second: a
 * full disk or a dead syslog server would otherwise log an error per request. */
static void report_lost(const char *what, const char *name, const char *why)
{
    static uint64_t last_report;

    if (pt_now_ms() - last_report >= 1000 || last_report == 0) {
        last_report = pt_now_ms();
        pt_log(PT_LOG_ERR, "%s \"%s\" failed: %s", what, name, why);
    }
}

static void write_out(struct access_log *log, const char *data, size_t len)
{
    ssize_t n = write(log->file->fd, data, len);

    if (n != (ssize_t)len)
        report_lost("writing access log", log->file->path, n < 0 ? strerror(errno) : "short write");
}

/* Sends <line> (<len> bytes, no newline) to the syslog server of <log>; a line it cannot
 * take at once is dropped, never waited for. */
static void send_syslog(struct access_log *log, const char *line, size_t len)
{
    if (pt_syslog_send(log->syslog, -1, line, len) != PT_OK)
        report_lost("sending access log to syslog", log->syslog->server, strerror(errno));
}

static void log_flush(struct access_log *log)
{
    if (log->len)
        write_out(log, log->data, log->len);
    log->len = 0;
    pt_timer_del(&log->timer);
}

static void flush_timer(struct pt_timer *t)
{
    log_flush(t->data);
}

static void log_line(struct access_log *log, const char *line, size_t len)
{
    if (log->data == NULL || len > (size_t)log->buffer_size) {
        write_out(log, line, len);
        return;
    }
    if (log->len + len > (size_t)log->buffer_size)
        log_flush(log);
    memcpy(log->data + log->len, line, len);
    log->len += len;
    /* flush= bounds how long the first line of a batch may wait. */
    if (log->flush_ms && !pt_timer_armed(&log->timer))
        pt_timer_add(&log->timer, (uint64_t)log->flush_ms);
}

static int log_handler(struct pt_request *r)
{
    struct log_loc_conf *llc = r->loc_conf ? pt_http_loc_conf(r, pt_access_log_module) : NULL;
    struct log_list *l = llc ? llc->list : NULL;
    char line[LOG_LINE_MAX];

    if (l == NULL || l->off)
        return PT_OK;
    for (int i = 0; i < l->n; i++) {
        struct access_log *log = l->logs[i];
        size_t n = pt_template_render(r, log->format->tpl, line, sizeof(line) - 1);
        if (log->syslog) {
            send_syslog(log, line, n);
            continue;
        }
        line[n++] = '\n';
        log_line(log, line, n);
    }
    return PT_OK;
}

/* --- hooks --- */

static int postconfig(struct pt_conf *cf)
{
    struct log_main_conf *mc = main_conf(cf);
    int rc = PT_OK;

    /* Idempotent; makes sure the core variables exist whatever the http core did. */
    if (pt_http_vars_register() != PT_OK)
        return pt_conf_error(cf, "cannot register the HTTP variables");
    for (struct log_format *f = mc->formats; f && rc == PT_OK; f = f->next) {
        cf->setting = f->setting;
        if ((f->tpl = pt_template_compile(cf, f->src, f->esc)) == NULL)
            rc = PT_ERROR;
        else
            pt_template_dash_missing(f->tpl);
    }
    for (struct access_log *log = mc->all; log && rc == PT_OK; log = log->next_all) {
        cf->setting = log->setting;
        if ((log->format = find_format(mc, log->format_name)) == NULL)
            rc = pt_conf_error(cf, "unknown log format \"%s\"", log->format_name);
    }
    cf->setting = NULL;
    if (rc == PT_OK && pt_phase_add(cf->cycle, PT_PHASE_LOG, log_handler) != PT_OK)
        rc = pt_conf_error(cf, "too many LOG phase handlers");
    return rc;
}

static int init_worker(struct pt_cycle *cycle)
{
    struct log_main_conf *mc = pt_cycle_main_conf(cycle, pt_access_log_module);

    for (struct access_log *log = mc->all; log; log = log->next_all) {
        if (log->buffer_size == 0)
            continue;
        /* Without its buffer a log still works, one write() per line. */
        log->data = malloc((size_t)log->buffer_size);
        log->len = 0;
        log->timer = (struct pt_timer){.handler = flush_timer, .data = log};
    }
    return PT_OK;
}

static void exit_worker(struct pt_cycle *cycle)
{
    struct log_main_conf *mc = pt_cycle_main_conf(cycle, pt_access_log_module);

    for (struct access_log *log = mc->all; log; log = log->next_all) {
        if (log->data == NULL)
            continue;
        log_flush(log);
        free(log->data);
        log->data = NULL;
    }
}

struct pt_module pt_access_log_module = {
    .name = "access_log",
    .directives = access_log_directives,
    .create_main_conf = create_main_conf,
    .create_loc_conf = create_loc_conf,
    .merge_loc_conf = merge_loc_conf,
    .postconfig = postconfig,
    .init_worker = init_worker,
    .exit_worker = exit_worker,
};
