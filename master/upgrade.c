/* upgrade.c: starting a new binary with the listeners and zones inherited. */
#include "master/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "worker/listen.h"
#include "core/log.h"
#include "core/shm.h"

#define MAX_FDS 128

static char **saved_argv;
static char exe_path[PATH_MAX];
static char start_dir[PATH_MAX];
static int zone_fds[MAX_FDS];
static int nzone_fds;

static int is_socket(int fd)
{
    int type;
    socklen_t len = sizeof(type);

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}

/* The zone memfds among the inherited fds (the sockets are listen.c's). */
static void collect_zone_fds(void)
{
    const char *env = getenv("PORTIER_INHERIT");

    for (const char *p = env; p && *p;) {
        char *end;
        long fd = strtol(p, &end, 10);
        if (end == p)
            break;
        if (fd > 2 && !is_socket((int)fd) && nzone_fds < MAX_FDS) {
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
            zone_fds[nzone_fds++] = (int)fd;
        }
        p = *end ? end + 1 : end;
    }
}

void pt_upgrade_save_argv(int argc, char **argv)
{
    ssize_t n;

    saved_argv = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; saved_argv && i < argc; i++)
        saved_argv[i] = strdup(argv[i]);
    /* The path the binary was started from: a new file installed there is what USR2 runs. */
    n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    exe_path[n > 0 ? n : 0] = '\0';
    if (n > 10 && strcmp(exe_path + n - 10, " (deleted)") == 0)
        exe_path[n - 10] = '\0';
    if (getcwd(start_dir, sizeof(start_dir)) == NULL)
        start_dir[0] = '\0';
    collect_zone_fds();
}

int pt_upgrade_inherited(void)
{
    return getenv("PORTIER_INHERIT") != NULL;
}

int pt_upgrade_take_zone_fd(const char *name)
{
    char found[PT_SHM_NAME_MAX];

    for (int i = 0; i < nzone_fds; i++) {
        if (zone_fds[i] >= 0 && pt_shm_fd_name(zone_fds[i], found) == PT_OK &&
            strcmp(found, name) == 0) {
            int fd = zone_fds[i];
            zone_fds[i] = -1;
            return fd;
        }
    }
    return -1;
}

static void oldbin_path(const char *pidfile, char *buf, size_t len)
{
    snprintf(buf, len, "%s.oldbin", pidfile);
}

/* In the child: make the inherited fds survive exec, say which they are, and run the
 * binary.  Only async-signal-safe work after fork (the env string was built before). */
static void exec_new_master(const int *fds, int nfds, char *env)
{
    sigset_t none;

    for (int i = 0; i < nfds; i++)
        fcntl(fds[i], F_SETFD, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    putenv(env);
    if (start_dir[0] && chdir(start_dir) < 0) {
        /* the argv paths may be relative: try anyway */
    }
    execv(exe_path, saved_argv);
    _exit(PT_EXIT_FATAL);
}

pid_t pt_upgrade_start(struct pt_cycle *cycle, const char *pidfile)
{
    static char env[16 + MAX_FDS * 12];
    int fds[MAX_FDS], nfds = 0;
    size_t n = (size_t)snprintf(env, sizeof(env), "PORTIER_INHERIT=");
    char oldbin[PATH_MAX];
    pid_t pid;

    if (saved_argv == NULL || exe_path[0] == '\0') {
        pt_log(PT_LOG_ERR, "binary upgrade: the binary's path is unknown");
        return -1;
    }
    for (struct pt_listen *ls = cycle->listens; ls && nfds < MAX_FDS; ls = ls->next)
        if (ls->fd >= 0)
            fds[nfds++] = ls->fd;
    for (struct pt_shm_zone *z = cycle->zones; z && nfds < MAX_FDS; z = z->next)
        if (z->addr)
            fds[nfds++] = z->fd;
    for (int i = 0; i < nfds && n < sizeof(env) - 12; i++)
        n += (size_t)snprintf(env + n, sizeof(env) - n, "%d;", fds[i]);
    oldbin_path(pidfile, oldbin, sizeof(oldbin));
    if (rename(pidfile, oldbin) < 0) {
        pt_log(PT_LOG_ERR, "binary upgrade: rename(%s, %s) failed: %m", pidfile, oldbin);
        return -1;
    }
    pid = fork();
    if (pid == 0)
        exec_new_master(fds, nfds, env);
    if (pid < 0) {
        pt_log(PT_LOG_ERR, "binary upgrade: fork() failed: %m");
        pt_upgrade_restore_pidfile(pidfile);
        return -1;
    }
    pt_log(PT_LOG_NOTICE, "binary upgrade: started new master %d (%s), pid file is now %s",
           (int)pid, exe_path, oldbin);
    return pid;
}

void pt_upgrade_restore_pidfile(const char *pidfile)
{
    char oldbin[PATH_MAX];

    oldbin_path(pidfile, oldbin, sizeof(oldbin));
    if (rename(oldbin, pidfile) < 0)
        pt_log(PT_LOG_ERR, "cannot rename %s back to %s: %m", oldbin, pidfile);
}
