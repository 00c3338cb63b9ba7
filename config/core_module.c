/* core_module.c: main-context directives. */
#include "config/core_module.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/conf.h"
#include "core/cycle.h"
#include "core/files.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/syslog.h"

static int set_worker_processes(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_error_log(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_pid(struct pt_conf *cf, const struct pt_directive *d, void *conf);
static int set_user(struct pt_conf *cf, const struct pt_directive *d, void *conf);

static const int64_t connections_bounds[2] = {8, 1048576};
static const int64_t draining_bounds[2] = {0, 1000};

static const struct pt_directive core_directives[] = {
    {"worker_processes", PT_CTX_MAIN, 0, PT_MAIN_CONF, set_worker_processes,
     offsetof(struct pt_core_conf, worker_processes), NULL,
     "number of worker processes, or \"auto\" for one per CPU (default auto)"},
    {"user", PT_CTX_MAIN, 0, PT_MAIN_CONF, set_user, offsetof(struct pt_core_conf, user), NULL,
     "\"user [group]\" the workers run as when started as root (default nobody)"},
    {"daemon", PT_CTX_MAIN, 0, PT_MAIN_CONF, pt_conf_set_flag,
     offsetof(struct pt_core_conf, daemon), NULL,
     "detach from the terminal (default false: stay in the foreground)"},
    {"pid", PT_CTX_MAIN, 0, PT_MAIN_CONF, set_pid, offsetof(struct pt_core_conf, pid), NULL,
     "pid file (default <prefix>/logs/portier.pid)"},
    {"error_log", PT_CTX_MAIN, 0, PT_MAIN_CONF, set_error_log,
     offsetof(struct pt_core_conf, error_log), NULL,
     "\"FILE [LEVEL] [json]\": FILE, stderr or syslog:server=ADDR[:PORT]|unix:/path"
     "[,facility=local7][,tag=portier][,nohostname] (nginx's syslog parameters; the severity "
     "is each line's level); LEVEL debug|info|notice|warn|error|crit (default notice); json "
     "writes each line as one JSON object (time, level, pid, process, message, and client, "
     "server, request, host for a request)"},
    {"worker_connections", PT_CTX_MAIN, 0, PT_MAIN_CONF, pt_conf_set_num,
     offsetof(struct pt_core_conf, worker_connections), connections_bounds,
     "most client and upstream connections one worker holds (default 1024)"},
    {"worker_shutdown_timeout", PT_CTX_MAIN, 0, PT_MAIN_CONF, pt_conf_set_msec,
     offsetof(struct pt_core_conf, worker_shutdown_timeout), NULL,
     "how long a draining worker may finish in-flight requests (default 60s)"},
    {"max_draining_generations", PT_CTX_MAIN, 0, PT_MAIN_CONF, pt_conf_set_num,
     offsetof(struct pt_core_conf, max_draining_generations), draining_bounds,
     "old worker generations allowed to drain at once; reloads beyond it end the oldest early "
     "(default 8)"},
    {"worker_rlimit_nofile", PT_CTX_MAIN, 0, PT_MAIN_CONF, pt_conf_set_num,
     offsetof(struct pt_core_conf, worker_rlimit_nofile), NULL,
     "RLIMIT_NOFILE of worker processes (default: 2 x worker_connections + 64)"},
    {"include", PT_CTX_MAIN | PT_CTX_HTTP | PT_CTX_SRV | PT_CTX_LOC | PT_CTX_UPS, PT_DIR_MULTI,
     PT_MAIN_CONF, pt_conf_set_include, 0, NULL,
     "\"PATH\" or a pattern \"conf.d/*.conf\", relative to the main configuration file's "
     "directory: each file (matches in sorted order) is a libconfig fragment of settings of "
     "the block the include is in, read as if written there (server lists add up); a pattern "
     "matching nothing is no error, a missing PATH is"},
    {NULL, 0, 0, 0, NULL, 0, NULL, NULL},
};

static void *create_main_conf(struct pt_conf *cf)
{
    struct pt_core_conf *cc = pt_palloc(cf->pool, sizeof(*cc));

    if (cc == NULL)
        return NULL;
    cc->worker_processes = PT_CONF_UNSET;
    cc->daemon = PT_CONF_UNSET;
    cc->error_log_level = PT_CONF_UNSET;
    cc->worker_connections = PT_CONF_UNSET;
    cc->worker_shutdown_timeout = PT_CONF_UNSET;
    cc->worker_rlimit_nofile = PT_CONF_UNSET;
    cc->max_draining_generations = PT_CONF_UNSET;
    return cc;
}

static int set_worker_processes(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_core_conf *cc = conf;
    int64_t n;

    if (strcmp(cf->value, "auto") == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cc->worker_processes = cpus > 0 ? cpus : 1;
        return PT_OK;
    }
    if (pt_parse_int(cf->value, &n) != PT_OK || n < 1 || n > 1024)
        return pt_conf_error(
            cf, "invalid worker_processes \"%s\": a number from 1 to 1024 or \"auto\"", cf->value);
    cc->worker_processes = n;
    return PT_OK;
}

/* The error log is opened once the configuration is accepted (at start, or on reload in
 * place of the running one's): find out now, while the directive's line is known, whether
 * it can be, as nginx does (creating the file, as opening it would, and by the same rules:
 * no link planted by another user is followed). */
static int can_open(struct pt_conf *cf, const char *path)
{
    int fd;

    if (path == NULL)
        return pt_conf_error(cf, "out of memory");
    if (strcmp(path, "stderr") == 0)
        return PT_OK;
    fd = pt_file_open_append(path, (uid_t)-1, NULL);
    if (fd < 0)
        return pt_conf_open_failed(cf, "error log", path, errno);
    close(fd);
    return PT_OK;
}

/* The "syslog:..." target of error_log, parsed and resolved now as nginx does; the
 * default tag is portier's name, and each line's severity is its level's. */
static int error_log_syslog(struct pt_conf *cf, struct pt_core_conf *cc, const char *target)
{
    char err[512];

    cc->error_log = pt_pstrdup(cf->pool, target);
    cc->error_log_syslog = pt_palloc(cf->pool, sizeof(*cc->error_log_syslog));
    if (cc->error_log == NULL || cc->error_log_syslog == NULL)
        return pt_conf_error(cf, "out of memory");
    if (pt_syslog_parse(cc->error_log_syslog, target + 7, "portier", 6, err, sizeof(err)) != PT_OK)
        return pt_conf_error(cf, "%s", err);
    return PT_OK;
}

static int set_error_log(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_core_conf *cc = conf;
    char *w[3];
    int n = pt_conf_split(cf, cf->value, w, 3);

    if (n < 1)
        return pt_conf_error(cf, "\"error_log\" takes \"FILE [LEVEL] [json]\"");
    cc->error_log_level = PT_LOG_NOTICE;
    cc->error_log_json = 0;
    cc->error_log_syslog = NULL;
    for (int i = 1; i < n; i++) {
        if (strcmp(w[i], "json") == 0 && !cc->error_log_json)
            cc->error_log_json = 1;
        else if (i == 1 && pt_log_level_parse(w[i], &cc->error_log_level) != PT_OK)
            return pt_conf_error(cf,
                                 "unknown log level \"%s\" (debug, info, notice, warn, error, "
                                 "crit)",
                                 w[i]);
        else if (i > 1)
            return pt_conf_error(
                cf, "unknown error_log parameter \"%s\" (use \"FILE [LEVEL] [json]\")", w[i]);
    }
    if (pt_syslog_is_target(w[0]))
        return error_log_syslog(cf, cc, w[0]);
    cc->error_log = (char *)(strcmp(w[0], "stderr") == 0 ? "stderr" : pt_conf_path(cf, w[0]));
    return can_open(cf, cc->error_log);
}

/* The pid file is written once the master has started, too late for the directive's line:
 * find out now whether its directory is there (-t included).  Writing it is not tried: a
 * check must not leave a pid file behind, and -t may run as another user than the master. */
static int set_pid(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    struct pt_core_conf *cc = conf;
    struct stat st;
    char *slash;
    int err;

    if (pt_conf_set_str(cf, d, conf) != PT_OK)
        return PT_ERROR;
    if ((cc->pid = (char *)pt_conf_path(cf, cc->pid)) == NULL)
        return pt_conf_error(cf, "out of memory");
    if (stat(cc->pid, &st) == 0 && S_ISDIR(st.st_mode))
        return pt_conf_error(cf, "pid file \"%s\" is a directory: name a file in it", cc->pid);
    slash = strrchr(cc->pid, '/');
    if (slash == NULL || slash == cc->pid)
        return PT_OK;
    *slash = '\0';
    err = stat(cc->pid, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    *slash = '/';
    return err ? pt_conf_open_failed(cf, "pid file", cc->pid, err) : PT_OK;
}

static int resolve_user(struct pt_conf *cf, struct pt_core_conf *cc)
{
    char *w[2];
    int n = pt_conf_split(cf, cc->user, w, 2);
    struct passwd *pw;
    struct group *gr;

    if (n < 1)
        return pt_conf_error(cf, "\"user\" takes \"USER [GROUP]\"");
    pw = getpwnam(w[0]);
    if (pw == NULL)
        return pt_conf_error(cf, "user \"%s\" does not exist", w[0]);
    cc->uid = pw->pw_uid;
    cc->gid = pw->pw_gid;
    if (n == 2) {
        gr = getgrnam(w[1]);
        if (gr == NULL)
            return pt_conf_error(cf, "group \"%s\" does not exist", w[1]);
        cc->gid = gr->gr_gid;
    }
    cc->user_set = 1;
    return PT_OK;
}

/* Resolved as it is read, so that a user that does not exist is named at its line. */
static int set_user(struct pt_conf *cf, const struct pt_directive *d, void *conf)
{
    if (pt_conf_set_str(cf, d, conf) != PT_OK)
        return PT_ERROR;
    /* The user only matters when we can switch to it; a non-root master keeps its own. */
    return geteuid() == 0 ? resolve_user(cf, conf) : PT_OK;
}

/* Descriptors a worker holds besides its connections: standard streams, logs, listeners,
 * the epoll instance, the shared-memory zones, files being served. */
#define WORKER_OWN_FDS 32

/* nginx's "worker_connections exceed open file resource limit", at start and with -t: each
 * of worker_connections, client or upstream, is a descriptor, and a worker that runs out of
 * descriptors first refuses clients with accept() errors instead of reusing idle
 * connections.  The limit is worker_rlimit_nofile, unless an unprivileged master cannot
 * raise its hard limit that far: the workers then keep the master's own. */
static void check_fd_limit(struct pt_conf *cf, const struct pt_core_conf *cc)
{
    int64_t limit = cc->worker_rlimit_nofile;
    struct rlimit rl;

    if (geteuid() != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
        (uint64_t)limit > (uint64_t)rl.rlim_max)
        limit = rl.rlim_cur == RLIM_INFINITY ? limit : (int64_t)rl.rlim_cur;
    if (cc->worker_connections + WORKER_OWN_FDS <= limit)
        return;
    pt_log(PT_LOG_WARN,
           "%s: %lld worker_connections exceed the open file limit of a worker (%lld, with %d "
           "for its own files): set worker_rlimit_nofile to at least %lld, or lower "
           "worker_connections",
           cf->cycle->conf_file, (long long)cc->worker_connections, (long long)limit,
           WORKER_OWN_FDS, (long long)(cc->worker_connections + WORKER_OWN_FDS));
}

static int init_main_conf(struct pt_conf *cf, void *conf)
{
    struct pt_core_conf *cc = conf;

    if (cc->worker_processes == PT_CONF_UNSET) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cc->worker_processes = cpus > 0 ? cpus : 1;
    }
    if (cc->daemon == PT_CONF_UNSET)
        cc->daemon = 0;
    if (cc->pid == NULL)
        cc->pid = (char *)pt_conf_path(cf, "logs/portier.pid");
    if (cc->error_log == NULL) {
        cc->error_log = "stderr";
        cc->error_log_level = PT_LOG_NOTICE;
    }
    if (cc->worker_connections == PT_CONF_UNSET)
        cc->worker_connections = 1024;
    if (cc->worker_shutdown_timeout == PT_CONF_UNSET)
        cc->worker_shutdown_timeout = 60000;
    if (cc->max_draining_generations == PT_CONF_UNSET)
        cc->max_draining_generations = 8;
    if (cc->worker_rlimit_nofile == PT_CONF_UNSET)
        cc->worker_rlimit_nofile = 2 * cc->worker_connections + 64;
    check_fd_limit(cf, cc);
    /* The user only matters when we can switch to it; a non-root master keeps its own. */
    if (geteuid() != 0)
        return PT_OK;
    if (cc->user_set)
        return PT_OK;
    cc->user = "nobody";
    return resolve_user(cf, cc);
}

struct pt_core_conf *pt_core_conf(struct pt_cycle *c)
{
    return c->main_conf[pt_core_module.index];
}

struct pt_module pt_core_module = {
    .name = "core",
    .directives = core_directives,
    .create_main_conf = create_main_conf,
    .init_main_conf = init_main_conf,
};
