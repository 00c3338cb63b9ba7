/*
 * master.c: the master loop.  It does no client I/O: it forks workers, watches them,
 * and turns signals into reloads, log reopens and stops.  Signals are blocked except in
 * sigsuspend(), and handlers only set flags.
 */
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/core_module.h"
#include "worker/listen.h"
#include "core/files.h"
#include "core/log.h"
#include "core/module.h"
#include "core/proctitle.h"
#include "master/sdnotify.h"
#include "master/upgrade.h"
#include "core/shm.h"
#include "core/times.h"
#include "worker/helper.h"
#include "worker/worker.h"

#define MAX_WORKERS 2048
#define HELPER_SLOT (-1) /* the slot of the helper process in the table of children */

struct worker {
    pid_t pid;
    unsigned generation;
    int slot;
    unsigned exiting : 1; /* told to stop: do not respawn */
    unsigned killed : 1;  /* ended early by max_draining_generations */
    time_t started;
};

static struct worker workers[MAX_WORKERS];
static int nworkers;

static volatile sig_atomic_t sig_child, sig_reload, sig_reopen, sig_quit, sig_term, sig_alarm,
    sig_upgrade, sig_winch;

/* Binary upgrade state: the new master we started, and whether WINCH stopped our workers
 * (then this master waits, without workers, for a commit or a rollback). */
static pid_t new_master;
static int workers_stopped;

/* Respawn backoff: a worker that dies within a second of its start doubles the delay. */
static unsigned respawn_delay_ms;
static int respawn_pending;

static void on_signal(int signo)
{
    switch (signo) {
    case SIGCHLD: sig_child = 1; break;
    case SIGHUP: sig_reload = 1; break;
    case SIGUSR1: sig_reopen = 1; break;
    case SIGQUIT: sig_quit = 1; break;
    case SIGTERM:
    case SIGINT: sig_term = 1; break;
    case SIGALRM: sig_alarm = 1; break;
    case SIGUSR2: sig_upgrade = 1; break;
    case SIGWINCH: sig_winch = 1; break;
    }
}

static void setup_signals(void)
{
    static const int sigs[] = {SIGCHLD, SIGHUP,  SIGUSR1, SIGQUIT, SIGTERM,
                               SIGINT,  SIGALRM, SIGUSR2, SIGWINCH};
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&set);
    for (size_t i = 0; i < pt_nelems(sigs); i++) {
        sigaction(sigs[i], &sa, NULL);
        sigaddset(&set, sigs[i]);
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigprocmask(SIG_BLOCK, &set, NULL);
}

static const char *role(const struct worker *w)
{
    return w->slot == HELPER_SLOT ? "helper" : "worker";
}

/* Forks the worker of <slot>, or the helper for HELPER_SLOT; the child never returns. */
static pid_t spawn(struct pt_cycle *cycle, int slot)
{
    pid_t pid = fork();

    if (pid < 0) {
        pt_log(PT_LOG_CRIT, "fork() failed: %m");
        return -1;
    }
    if (pid == 0 && slot == HELPER_SLOT)
        pt_helper_main(cycle);
    if (pid == 0)
        pt_worker_main(cycle, slot);
    if (nworkers < MAX_WORKERS) {
        workers[nworkers++] = (struct worker){pid, cycle->generation, slot, 0, 0, pt_time_sec()};
    }
    pt_log(PT_LOG_NOTICE, "started %s process %d", role(&workers[nworkers - 1]), (int)pid);
    return pid;
}

/* Worker processes alive, of every generation (the helper is not one). */
static int count_workers(void)
{
    int n = 0;

    for (int i = 0; i < nworkers; i++)
        n += workers[i].slot != HELPER_SLOT;
    return n;
}

static void spawn_all(struct pt_cycle *cycle)
{
    struct pt_core_conf *cc = pt_core_conf(cycle);

    for (int i = 0; i < (int)cc->worker_processes; i++)
        spawn(cycle, i);
    if (cycle->need_helper)
        spawn(cycle, HELPER_SLOT);
}

static void signal_workers(int signo, int only_old_generation, unsigned current)
{
    for (int i = 0; i < nworkers; i++) {
        if (only_old_generation && workers[i].generation == current)
            continue;
        if (signo == SIGQUIT || signo == SIGTERM)
            workers[i].exiting = 1;
        kill(workers[i].pid, signo);
    }
}

static void arm_alarm(unsigned ms)
{
    struct itimerval it = {{0, 0}, {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000}};

    setitimer(ITIMER_REAL, &it, NULL);
}

/* The new master of an upgrade is gone: it failed to start, or it was told to quit (a
 * rollback).  This master takes its pid file back and, if WINCH had stopped its workers,
 * serves again: a rollback never leaves the listeners without workers. */
static void new_master_exited(struct pt_cycle *cycle, int status)
{
    if (WIFEXITED(status))
        pt_log(PT_LOG_NOTICE, "binary upgrade: new master %d exited with code %d%s",
               (int)new_master, WEXITSTATUS(status),
               WEXITSTATUS(status) ? ", the upgrade failed; this master carries on" : "");
    else
        pt_log(PT_LOG_NOTICE, "binary upgrade: new master %d exited on signal %d", (int)new_master,
               WTERMSIG(status));
    new_master = 0;
    pt_upgrade_restore_pidfile(pt_core_conf(cycle)->pid);
    if (workers_stopped) {
        workers_stopped = 0;
        pt_log(PT_LOG_NOTICE, "binary upgrade rolled back: starting workers again");
        spawn_all(cycle);
    }
}

/* Collects exited workers; returns how many of the current generation must be respawned. */
static void reap(struct pt_cycle *cycle)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == new_master) {
            new_master_exited(cycle, status);
            continue;
        }
        for (int i = 0; i < nworkers; i++) {
            struct worker w = workers[i];
            if (w.pid != pid)
                continue;
            workers[i] = workers[--nworkers];
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                pt_log(PT_LOG_NOTICE, "%s process %d exited", role(&w), (int)pid);
                if (!w.exiting && w.generation == cycle->generation)
                    respawn_pending = 1; /* a worker is not meant to exit by itself */
                break;
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == PT_EXIT_FATAL) {
                pt_log(PT_LOG_CRIT, "%s process %d exited with a fatal error, not respawning",
                       role(&w), (int)pid);
                break;
            }
            if (WIFSIGNALED(status))
                pt_log(PT_LOG_ERR, "%s process %d exited on signal %d", role(&w), (int)pid,
                       WTERMSIG(status));
            else
                pt_log(PT_LOG_ERR, "%s process %d exited with code %d", role(&w), (int)pid,
                       WEXITSTATUS(status));
            if (w.exiting || w.generation != cycle->generation)
                break;
            /* Backoff against a respawn storm: a worker that dies right after its start
             * doubles the wait before the next one, up to 30 s. */
            if (pt_time_sec() - w.started < 2)
                respawn_delay_ms = respawn_delay_ms ? pt_min(respawn_delay_ms * 2, 30000u) : 100;
            else
                respawn_delay_ms = 0;
            respawn_pending = 1;
            break;
        }
    }
}

static void respawn_missing(struct pt_cycle *cycle)
{
    struct pt_core_conf *cc = pt_core_conf(cycle);
    char used[MAX_WORKERS] = {0};
    int helper = 0;

    respawn_pending = 0;
    for (int i = 0; i < nworkers; i++) {
        if (workers[i].generation != cycle->generation || workers[i].exiting)
            continue;
        if (workers[i].slot == HELPER_SLOT)
            helper = 1;
        else if (workers[i].slot >= 0 && workers[i].slot < MAX_WORKERS)
            used[workers[i].slot] = 1;
    }
    /* The forked child sees the flag; the master's own copy is cleared again. */
    pt_worker_respawned = 1;
    for (int s = 0; s < (int)cc->worker_processes && s < MAX_WORKERS; s++)
        if (!used[s])
            spawn(cycle, s);
    pt_worker_respawned = 0;
    if (cycle->need_helper && !helper)
        spawn(cycle, HELPER_SLOT);
}

/* Ends the oldest draining generations early when reloads come faster than their workers
 * drain, so that at most max_draining_generations of them hold memory and connections. */
static void cap_draining(struct pt_cycle *cycle)
{
    int max = (int)pt_core_conf(cycle)->max_draining_generations;

    for (;;) {
        unsigned oldest = 0;
        int ngen = 0;
        for (int i = 0; i < nworkers; i++) {
            unsigned g = workers[i].generation;
            int seen = 0;
            if (g == cycle->generation || workers[i].killed)
                continue;
            for (int j = 0; j < i; j++)
                seen |= workers[j].generation == g && !workers[j].killed;
            ngen += !seen;
            if (oldest == 0 || g < oldest)
                oldest = g;
        }
        if (ngen <= max)
            return;
        pt_log(PT_LOG_WARN,
               "%d draining generations, more than max_draining_generations %d: ending draining "
               "generation %u early",
               ngen, max, oldest);
        for (int i = 0; i < nworkers; i++) {
            if (workers[i].generation == oldest) {
                workers[i].killed = 1;
                kill(workers[i].pid, SIGTERM);
            }
        }
    }
}

/* USR2: start the new binary, unless an upgrade is already under way. */
static void upgrade(struct pt_cycle *cycle)
{
    char oldbin[4096];

    if (new_master > 0) {
        pt_log(PT_LOG_WARN, "binary upgrade already in progress (new master %d): USR2 ignored",
               (int)new_master);
        return;
    }
    /* The new master of an upgrade that is not committed yet (its old master still runs,
     * PID.oldbin still exists) must not start a third generation over the pid files. */
    snprintf(oldbin, sizeof(oldbin), "%s.oldbin", pt_core_conf(cycle)->pid);
    if (access(oldbin, F_OK) == 0) {
        pt_log(PT_LOG_WARN, "binary upgrade already in progress (%s exists): USR2 ignored", oldbin);
        return;
    }
    new_master = pt_upgrade_start(cycle, pt_core_conf(cycle)->pid);
    if (new_master < 0)
        new_master = 0;
}

/* WINCH: during an upgrade, the old workers drain and exit; this master stays for a
 * rollback.  Without an upgrade under way it would only leave the ports unserved. */
static void stop_workers_for_upgrade(void)
{
    if (new_master <= 0) {
        pt_log(PT_LOG_WARN, "WINCH ignored: no binary upgrade in progress");
        return;
    }
    pt_log(PT_LOG_NOTICE, "binary upgrade: stopping the old workers gracefully");
    workers_stopped = 1;
    respawn_pending = 0;
    signal_workers(SIGQUIT, 0, 0);
}

/* HUP after WINCH: the rollback's first step, workers again with the configuration this
 * master already has (not reread: the file on disk may be the new binary's). */
static void restart_workers(struct pt_cycle *cycle)
{
    pt_log(PT_LOG_NOTICE,
           "binary upgrade: starting the old workers again (configuration not reread)");
    workers_stopped = 0;
    spawn_all(cycle);
    pt_sd_ready("serving");
}

static struct pt_cycle *reload(struct pt_cycle *cycle, const struct pt_master_args *args)
{
    char err[1024];
    struct pt_cycle *fresh;
    struct pt_core_conf *cc;

    pt_log(PT_LOG_NOTICE, "reloading configuration %s", args->conf_file);
    pt_sd_notify("RELOADING=1");
    fresh = pt_cycle_load(args->conf_file, args->prefix, err, sizeof(err));
    if (fresh == NULL || pt_master_prepare(fresh, cycle, err, sizeof(err)) != PT_OK) {
        pt_log(PT_LOG_ERR, "reload of %s failed, keeping the running configuration: %s",
               args->conf_file, err);
        pt_cycle_free(fresh);
        pt_sd_ready("reload failed, running the previous configuration");
        return cycle;
    }
    cc = pt_core_conf(fresh);
    if (pt_log_open(cc->error_log, cc->error_log_syslog, cc->error_log_level, cc->error_log_json) !=
        PT_OK)
        pt_log(PT_LOG_ERR, "cannot open error log %s: %m", cc->error_log);
    pt_cycle = fresh;
    /* New workers first, so that the listeners are never without an accepting process. */
    spawn_all(fresh);
    signal_workers(SIGQUIT, 1, fresh->generation);
    pt_master_release(cycle);
    pt_cycle_free(cycle);
    workers_stopped = 0;
    pt_log(PT_LOG_NOTICE, "reload done: %s, %lld workers", args->conf_file,
           (long long)cc->worker_processes);
    cap_draining(fresh);
    pt_sd_ready("serving");
    return fresh;
}

static void wait_all_exit(struct pt_cycle *cycle, int signo)
{
    sigset_t empty;

    sigemptyset(&empty);
    signal_workers(signo, 0, 0);
    while (nworkers > 0) {
        if (sig_term && signo != SIGTERM) {
            /* A second, harder signal during a graceful stop. */
            signo = SIGTERM;
            signal_workers(SIGTERM, 0, 0);
        }
        sig_child = 0;
        reap(cycle);
        if (nworkers == 0)
            break;
        sigsuspend(&empty);
        pt_time_update();
    }
}

/* USR1: reopens the error log and the cycle's log files; as root, a file it creates is
 * given to the workers' user so that they can reopen it in turn after the USR1 sent to
 * them.  Nothing else is chowned, and no link planted in a log directory is followed
 * (files.h). */
static void reopen_logs(struct pt_cycle *cycle)
{
    struct pt_core_conf *cc = pt_core_conf(cycle);
    uid_t uid = geteuid() == 0 && cc->user_set ? cc->uid : (uid_t)-1;

    if (pt_log_reopen_for(uid) != PT_OK)
        pt_log(PT_LOG_ERR, "cannot reopen error log %s: %s", pt_log_path(),
               pt_file_strerror(errno));
    pt_files_reopen(cycle, uid);
}

int pt_master_run(struct pt_cycle *cycle, const struct pt_master_args *args)
{
    sigset_t empty;

    pt_log_set_role("master");
    setup_signals();
    pt_proctitle_set("portier: master process");
    sigemptyset(&empty);
    spawn_all(cycle);
    pt_sd_ready("serving");
    for (;;) {
        sigsuspend(&empty);
        pt_time_update();
        if (sig_term) {
            pt_log(PT_LOG_NOTICE, "fast shutdown");
            pt_sd_notify("STOPPING=1");
            wait_all_exit(cycle, SIGTERM);
            break;
        }
        if (sig_quit) {
            pt_log(PT_LOG_NOTICE, "graceful shutdown");
            pt_sd_notify("STOPPING=1");
            wait_all_exit(cycle, SIGQUIT);
            break;
        }
        if (sig_upgrade) {
            sig_upgrade = 0;
            upgrade(cycle);
        }
        if (sig_winch) {
            sig_winch = 0;
            stop_workers_for_upgrade();
        }
        if (sig_child) {
            sig_child = 0;
            reap(cycle);
            if (count_workers() == 0 && !respawn_pending && !workers_stopped) {
                pt_log(PT_LOG_CRIT, "no worker process left, exiting");
                wait_all_exit(cycle, SIGTERM); /* the helper, if any */
                break;
            }
            if (respawn_pending && respawn_delay_ms)
                arm_alarm(respawn_delay_ms);
            else if (respawn_pending)
                respawn_missing(cycle);
        }
        if (sig_alarm) {
            sig_alarm = 0;
            if (respawn_pending)
                respawn_missing(cycle);
        }
        if (sig_reload) {
            sig_reload = 0;
            if (workers_stopped)
                restart_workers(cycle);
            else
                cycle = reload(cycle, args);
        }
        if (sig_reopen) {
            sig_reopen = 0;
            pt_log(PT_LOG_NOTICE, "reopening logs");
            reopen_logs(cycle);
            signal_workers(SIGUSR1, 0, 0);
        }
    }
    pt_cycle = cycle;
    /* After an upgrade that was committed, this (old) master's pid file is the .oldbin one;
     * the plain one belongs to the new master. */
    if (new_master > 0) {
        char oldbin[4096];
        snprintf(oldbin, sizeof(oldbin), "%s.oldbin", pt_core_conf(cycle)->pid);
        unlink(oldbin);
    } else {
        unlink(pt_core_conf(cycle)->pid);
    }
    return 0;
}
