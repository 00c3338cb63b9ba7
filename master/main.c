/*
 * main.c: the command line.  portier [-c FILE] [-p PREFIX] [-t] [-s SIGNAL] [-V] [-h]
 */
#include <errno.h>
#include <fcntl.h>
#ifdef PT_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#if PORTIER_WITH_WAF
#include <modsecurity/modsecurity.h>
#endif
#include <openssl/crypto.h>
#include <pcre2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "config/conf.h"
#include "config/core_module.h"
#include "worker/listen.h"
#include "core/log.h"
#include "master/master.h"
#include "core/module.h"
#include "core/proctitle.h"
#include "core/times.h"
#include "master/upgrade.h"

#ifndef PT_DEFAULT_PREFIX
#define PT_DEFAULT_PREFIX "/usr/local/portier"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: portier [-c FILE] [-p PREFIX] [-t] [-s reload|reopen|quit|stop] [-V] [-h]\n"
               "  -c FILE    configuration file (default PREFIX/conf/portier.conf)\n"
               "  -p PREFIX  prefix for relative paths (default " PT_DEFAULT_PREFIX ")\n"
               "  -t         test the configuration and exit (0 ok, 1 invalid)\n"
               "  -s SIGNAL  send SIGNAL to the running master named in the pid file\n"
               "  -V         print the version, the modules built in and library versions\n"
               "  -R         print the configuration reference (Markdown)\n"
               "  -h         this help\n");
}

static void version(void)
{
    char pcre[64] = "";

    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    printf("portier %s\nmodules:", PORTIER_VERSION);
    for (int i = 0; pt_modules[i]; i++)
        printf(" %s", pt_modules[i]->name);
    printf("\nlibraries: %s, zlib %s, PCRE2 %s, %s", OpenSSL_version(OPENSSL_VERSION),
           zlibVersion(), pcre, pt_conf_parser_version());
#if PORTIER_WITH_WAF
    printf(", libmodsecurity %s", MODSECURITY_VERSION);
#endif
#ifdef PT_HAVE_JEMALLOC
    printf(", jemalloc %d.%d.%d", JEMALLOC_VERSION_MAJOR, JEMALLOC_VERSION_MINOR,
           JEMALLOC_VERSION_BUGFIX);
#endif
    printf("\n");
}

/* Reads up to <len> - 1 bytes of /proc/<pid>/<what> into <buf>, NULs (between argv
 * strings) turned into spaces and a final newline dropped.  Returns the length, or -1 with
 * errno set. */
static ssize_t read_proc(long pid, const char *what, char *buf, size_t len)
{
    char path[64];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/%s", pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
        n--;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    return n;
}

#define MASTER_TITLE "portier: master process"

/* Whether process <pid> is a portier master: its title says so, or (a title cut short by a
 * short command line, or not set yet) it runs a program of our name that is not titled as a
 * worker or the helper.  A stale pid file may name any process: signalling it would hit
 * whatever now has that pid.  Writes into <why> what it is instead. */
static int is_master(long pid, char *why, size_t len)
{
    char cmd[256], comm[64], self[64];

    if (read_proc(pid, "cmdline", cmd, sizeof(cmd)) < 0) {
        snprintf(why, len, "no process %ld (%s)", pid, strerror(errno));
        return 0;
    }
    if (strncmp(cmd, MASTER_TITLE, strlen(MASTER_TITLE)) == 0)
        return 1;
    if (read_proc(pid, "comm", comm, sizeof(comm)) >= 0 &&
        read_proc((long)getpid(), "comm", self, sizeof(self)) >= 0 && strcmp(comm, self) == 0 &&
        strncmp(cmd, "portier: ", 9) != 0)
        return 1;
    snprintf(why, len, "process %ld is \"%s\", not a portier master", pid, cmd[0] ? cmd : comm);
    return 0;
}

/* -s: sends the signal named <name> to the master whose pid is in the pid file.  Returns
 * the exit code. */
static int send_signal(struct pt_cycle *cycle, const char *name)
{
    static const struct {
        const char *name;
        int signo;
    } sigs[] = {{"reload", SIGHUP}, {"reopen", SIGUSR1}, {"quit", SIGQUIT}, {"stop", SIGTERM}};
    const char *path = pt_core_conf(cycle)->pid;
    char buf[32] = "", why[512];
    long pid;
    FILE *f;

    for (size_t i = 0; i < pt_nelems(sigs); i++) {
        if (strcmp(name, sigs[i].name) != 0)
            continue;
        f = fopen(path, "r");
        if (f == NULL || fgets(buf, sizeof(buf), f) == NULL || (pid = atol(buf)) <= 0) {
            fprintf(stderr, "portier: cannot read a pid from %s: %s\n", path,
                    f ? "empty or invalid" : strerror(errno));
            if (f)
                fclose(f);
            return 1;
        }
        fclose(f);
        if (!is_master(pid, why, sizeof(why))) {
            fprintf(stderr,
                    "portier: %s: %s; nothing signalled (a stale pid file? remove it if no "
                    "portier runs)\n",
                    path, why);
            return 1;
        }
        if (kill((pid_t)pid, sigs[i].signo) < 0) {
            fprintf(stderr, "portier: kill(%ld, SIG%s) failed: %s\n", pid, name, strerror(errno));
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "portier: unknown signal \"%s\" (reload, reopen, quit, stop)\n", name);
    return 1;
}

/* Writes our pid into <path>.  The pid file may sit in the log directory, which the
 * workers' user may be able to write: a link or a hard link planted there must not make
 * a root master truncate another file, nor a FIFO hang it. */
static int write_pid(const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    struct stat st;

    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
        pt_log(PT_LOG_CRIT,
               "pid file %s is not a plain file (a link, or a special file): remove it", path);
        close(fd);
        return PT_ERROR;
    }
    if (fd < 0 || ftruncate(fd, 0) != 0 || write(fd, buf, (size_t)n) != n) {
        if (fd < 0 && errno == ELOOP)
            pt_log(PT_LOG_CRIT, "pid file %s is a symbolic link, not followed: remove it", path);
        else
            pt_log(PT_LOG_CRIT, "cannot write pid file %s: %m", path);
        if (fd >= 0)
            close(fd);
        return PT_ERROR;
    }
    close(fd);
    return PT_OK;
}

static int daemonize(void)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        return PT_ERROR;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return PT_ERROR;
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (pt_log_fd() != 2)
            dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    return PT_OK;
}

int main(int argc, char **argv)
{
    const char *conf = NULL, *prefix = PT_DEFAULT_PREFIX, *sig = NULL;
    struct pt_master_args args;
    struct pt_cycle *cycle;
    struct pt_core_conf *cc;
    static char conf_copy[4096], prefix_copy[4096];
    char err[1024], path[4096];
    int opt, test = 0, rc;

    pt_time_update();
    pt_upgrade_save_argv(argc, argv);
    while ((opt = getopt(argc, argv, "c:p:ts:VRh")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'p': prefix = optarg; break;
        case 't': test = 1; break;
        case 's': sig = optarg; break;
        case 'V': version(); return 0;
        case 'R':
            pt_modules_count();
            pt_conf_print_reference(stdout);
            return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (conf == NULL) {
        snprintf(path, sizeof(path), "%s/conf/portier.conf", prefix);
        conf = path;
    }
    /* The process title is written over argv later: keep our own copies. */
    snprintf(conf_copy, sizeof(conf_copy), "%s", conf);
    snprintf(prefix_copy, sizeof(prefix_copy), "%s", prefix);
    conf = conf_copy;
    prefix = prefix_copy;
    pt_log_set_console();
    cycle = pt_cycle_load(conf, prefix, err, sizeof(err));
    if (cycle == NULL) {
        fprintf(stderr, "portier: %s\n", err);
        if (test)
            fprintf(stderr, "portier: configuration file %s test failed\n", conf);
        return 1;
    }
    if (sig || test) {
        rc = sig ? send_signal(cycle, sig) : 0;
        if (test)
            printf("portier: configuration file %s test is successful\n", conf);
        pt_cycle_free(cycle);
        return rc;
    }
    cc = pt_core_conf(cycle);
    if (pt_log_open(cc->error_log, cc->error_log_syslog, cc->error_log_level, cc->error_log_json) !=
        PT_OK) {
        fprintf(stderr, "portier: cannot open error log %s: %s\n", cc->error_log, strerror(errno));
        return 1;
    }
    pt_listen_inherit_from_env();
    pt_cycle = cycle;
    if (pt_master_prepare(cycle, NULL, err, sizeof(err)) != PT_OK) {
        pt_log(PT_LOG_CRIT, "%s", err);
        if (pt_log_fd() != 2)
            fprintf(stderr, "portier: %s\n", err);
        return 1;
    }
    /* A master started by a binary upgrade is already where its parent was. */
    if (cc->daemon && !pt_upgrade_inherited() && daemonize() != PT_OK) {
        pt_log(PT_LOG_CRIT, "cannot become a daemon: %m");
        return 1;
    }
    /* Titled before the pid file names us, so that -s finds a master there at once. */
    pt_proctitle_init(argc, argv);
    pt_proctitle_set("portier: master process");
    if (write_pid(cc->pid) != PT_OK)
        return 1;
    args = (struct pt_master_args){conf, prefix, argv};
    pt_log(PT_LOG_NOTICE, "portier %s started, %lld workers", PORTIER_VERSION,
           (long long)cc->worker_processes);
    rc = pt_master_run(cycle, &args);
    pt_log(PT_LOG_NOTICE, "exit");
    pt_master_release(pt_cycle);
    pt_cycle_free(pt_cycle);
    return rc;
}
