/*
 * core_module.h: the main-context directives every process obeys (worker_processes, user,
 * daemon, pid, error_log, worker_connections, worker_shutdown_timeout), and include, which
 * the configuration layer carries out in any context.
 */
#ifndef PT_CORE_MODULE_H
#define PT_CORE_MODULE_H

#include <stdint.h>
#include <sys/types.h>

#include "core/module.h"

struct pt_syslog;

struct pt_core_conf {
    int64_t worker_processes; /* "auto" resolves to the number of online CPUs */
    char *user;               /* "user [group]" */
    uid_t uid;
    gid_t gid;
    int user_set; /* user resolved to uid/gid (only meaningful as root) */
    int daemon;
    char *pid;
    char *error_log; /* path or "syslog:...", and the level below */
    int error_log_level;
    int error_log_json;                 /* one JSON object a line */
    struct pt_syslog *error_log_syslog; /* the target when error_log is "syslog:..." */
    int64_t worker_connections;
    int64_t worker_shutdown_timeout; /* ms */
    int64_t worker_rlimit_nofile;
    int64_t max_draining_generations;
};

extern struct pt_module pt_core_module;

/* The core configuration of cycle <c>. */
struct pt_core_conf *pt_core_conf(struct pt_cycle *c);

#endif
