/*
 * process.c: what every child of the master does first, worker or helper: take its name,
 * its signals and its privileges, and create its event loop.
 */
#include "worker/process.h"

#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config/core_module.h"
#include "core/log.h"
#include "core/proctitle.h"
#include "worker/event.h"

volatile sig_atomic_t pt_sig_quit, pt_sig_term, pt_sig_reopen;

static void on_signal(int signo)
{
    switch (signo) {
    case SIGQUIT: pt_sig_quit = 1; break;
    case SIGTERM:
    case SIGINT: pt_sig_term = 1; break;
    case SIGUSR1: pt_sig_reopen = 1; break;
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

void pt_process_start(struct pt_cycle *cycle, const char *role, const char *title)
{
    pt_log_set_role(role);
    pt_proctitle_set(title);
    setup_signals();
    pt_cycle = cycle;
    if (drop_privileges(pt_core_conf(cycle)) != PT_OK || pt_loop_init() != PT_OK)
        _exit(PT_EXIT_FATAL);
}
