/*
 * worker.c: the worker processes, and the helper: the one unprivileged process that does
 * periodic work once for all workers (active health checks, re-resolving names).  Both
 * start the same way: signals, privileges, an event loop, their modules' hooks.
 */
#include "worker/worker.h"

#include <errno.h>
#include <grp.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/buf.h"
#include "config/core_module.h"
#include "worker/event.h"
#include "worker/http.h"
#include "worker/listen.h"
#include "core/files.h"
#include "core/log.h"
#include "core/module.h"
#include "core/proctitle.h"

static volatile sig_atomic_t sig_quit, sig_term, sig_reopen;

static void on_signal(int signo)
{
    switch (signo) {
    case SIGQUIT: sig_quit = 1; break;
    case SIGTERM:
    case SIGINT: sig_term = 1; break;
    case SIGUSR1: sig_reopen = 1; break;
    }
}

static void setup_signals(void)
{
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    /* Blocked except inside epoll_pwait (see event.c). */
    sigemptyset(&set);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_SETMASK, &set, NULL);
}

static int drop_privileges(struct pt_core_conf *cc)
{
    struct rlimit rl = {(rlim_t)cc->worker_rlimit_nofile, (rlim_t)cc->worker_rlimit_nofile};

    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        pt_log(PT_LOG_WARN, "setrlimit(RLIMIT_NOFILE, %lld) failed: %m",
               (long long)cc->worker_rlimit_nofile);
    if (geteuid() == 0 && cc->user_set &&
        (setgroups(0, NULL) < 0 || setgid(cc->gid) < 0 || setuid(cc->uid) < 0)) {
        pt_log(PT_LOG_CRIT, "cannot switch to user \"%s\": %m", cc->user);
        return PT_ERROR;
    }
    /* Not dumpable (unlike nginx): another process of the same uid could otherwise read
     * this one's memory and descriptors through /proc (TLS ticket keys, the zones' memfds).
     * The kernel's fs.suid_dumpable=2 (root-only core files) is kept where it applies. */
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1)
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    return PT_OK;
}

static int listen_all(struct pt_cycle *cycle)
{
    for (struct pt_listen *ls = cycle->listens; ls; ls = ls->next) {
        ls->ev.fd = ls->fd;
        ls->ev.handler = pt_http_accept;
        ls->ev.data = ls;
        /* EPOLLEXCLUSIVE: one worker is woken per new connection, not all of them. */
        if (pt_event_add_read(&ls->ev, 1) != PT_OK) {
            pt_log(PT_LOG_CRIT, "cannot watch %s: %m", ls->text);
            return PT_ERROR;
        }
    }
    return PT_OK;
}

static void stop_accepting(struct pt_cycle *cycle)
{
    for (struct pt_listen *ls = cycle->listens; ls; ls = ls->next) {
        if (ls->fd < 0)
            continue;
        pt_event_del(&ls->ev);
        close(ls->fd);
        ls->fd = -1;
    }
}

/* How often a worker looks whether a burst of requests left it holding memory it no
 * longer uses. */
#define TRIM_INTERVAL_MS 2000
#define TRIM_MIN_BYTES   (1024 * 1024)

/* Gives back what a past burst took: the I/O buffers that sat unused on the free list for
 * a whole interval, then (glibc) the free pages inside the heap.  malloc keeps freed
 * chunks resident when anything still lives above them, so without malloc_trim the
 * requests' buffers and pools of a burst stay in the worker's RSS for good.  Only called
 * when buffers were surplus, which is when the heap has free pages worth the walk. */
static void trim_memory(void)
{
    static uint64_t next;

    if (pt_now_ms() < next)
        return;
    next = pt_now_ms() + TRIM_INTERVAL_MS;
    /* Less than a MiB of buffers back is not worth a walk of the whole heap, which
     * holds up the loop while it runs. */
    if (pt_buf_trim() < TRIM_MIN_BYTES)
        return;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void exit_modules(struct pt_cycle *cycle)
{
    for (int i = 0; pt_modules[i]; i++)
        if (pt_modules[i]->exit_worker)
            pt_modules[i]->exit_worker(cycle);
}

/* What a worker and the helper do first: take their name, signals and privileges, and
 * create their loop.  Exits with PT_EXIT_FATAL when that fails. */
static void start_child(struct pt_cycle *cycle, const char *role, const char *title)
{
    pt_log_set_role(role);
    pt_proctitle_set(title);
    setup_signals();
    pt_cycle = cycle;
    if (drop_privileges(pt_core_conf(cycle)) != PT_OK || pt_loop_init() != PT_OK)
        _exit(PT_EXIT_FATAL);
}

void pt_helper_main(struct pt_cycle *cycle)
{
    start_child(cycle, "helper", "portier: helper process");
    for (int i = 0; pt_modules[i]; i++) {
        if (pt_modules[i]->init_helper && pt_modules[i]->init_helper(cycle) != PT_OK) {
            pt_log(PT_LOG_CRIT, "module %s failed to start in the helper", pt_modules[i]->name);
            _exit(PT_EXIT_FATAL);
        }
    }
    /* The helper holds no client: a graceful stop is as quick as a fast one.  A check in
     * flight is abandoned; the next generation's helper starts its own. */
    while (!sig_quit && !sig_term) {
        pt_loop_once(1000);
        if (sig_reopen) {
            sig_reopen = 0;
            pt_log_reopen();
        }
    }
    _exit(0);
}

void pt_worker_main(struct pt_cycle *cycle, int slot)
{
    struct pt_core_conf *cc = pt_core_conf(cycle);
    uint64_t deadline = 0;

    start_child(cycle, "worker", "portier: worker process");
    if (listen_all(cycle) != PT_OK)
        _exit(PT_EXIT_FATAL);
    for (int i = 0; pt_modules[i]; i++) {
        if (pt_modules[i]->init_worker && pt_modules[i]->init_worker(cycle) != PT_OK) {
            pt_log(PT_LOG_CRIT, "module %s failed to start in worker %d", pt_modules[i]->name,
                   slot);
            _exit(PT_EXIT_FATAL);
        }
    }
    for (;;) {
        /* A draining worker looks often whether its last connection is gone: an old
         * generation should not outlive its work by a whole wait. */
        pt_loop_once(deadline ? 20 : 1000);
        if (sig_term)
            break;
        trim_memory();
        if (sig_reopen) {
            sig_reopen = 0;
            pt_log_reopen();
            pt_files_reopen(cycle, (uid_t)-1);
        }
        if (sig_quit && deadline == 0) {
            pt_log(PT_LOG_NOTICE, "gracefully shutting down");
            stop_accepting(cycle);
            pt_http_drain();
            deadline = pt_now_ms() + (uint64_t)cc->worker_shutdown_timeout;
        }
        if (deadline && pt_http_conn_count() == 0)
            break;
        if (deadline && pt_now_ms() >= deadline) {
            pt_log(PT_LOG_WARN, "worker_shutdown_timeout: closing %u connections",
                   pt_http_conn_count());
            break;
        }
    }
    exit_modules(cycle);
    /* A fast stop (TERM: shutdown, or a draining generation ended early) leaves at once;
     * the exit handlers (a sanitizer's leak scan, say) belong to graceful exits. */
    if (sig_term)
        _exit(0);
    exit(0);
}
