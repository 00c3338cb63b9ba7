/* files.c: the log files of a cycle, opened in the master and reopened on USR1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dup3; CMake defines it for the whole build */
#endif
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cycle.h"
#include "log.h"
#include "pool.h"

#define FILE_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
#define FILE_MODE  0644

static void file_close(void *arg)
{
    struct pt_file *f = arg;

    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

struct pt_file *pt_file_open(struct pt_cycle *c, const char *path)
{
    struct pt_file *f;

    for (f = c->files; f; f = f->next)
        if (strcmp(f->path, path) == 0)
            return f;
    f = pt_palloc(c->pool, sizeof(*f));
    if (f == NULL || (f->path = pt_pstrdup(c->pool, path)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    f->fd = open(path, FILE_FLAGS, FILE_MODE);
    if (f->fd < 0)
        return NULL;
    if (pt_pool_cleanup(c->pool, file_close, f) != PT_OK) {
        close(f->fd);
        errno = ENOMEM;
        return NULL;
    }
    f->next = c->files;
    c->files = f;
    return f;
}

/* Gives the newly opened <fd> of <path> to <uid> if it belongs to someone else. */
static void give_to(int fd, const char *path, uid_t uid)
{
    struct stat st;

    if (uid == (uid_t)-1 || geteuid() != 0 || fstat(fd, &st) != 0 || st.st_uid == uid)
        return;
    if (fchown(fd, uid, (gid_t)-1) != 0)
        pt_log(PT_LOG_WARN, "chown(\"%s\", %u) failed: %s", path, (unsigned)uid, strerror(errno));
}

int pt_files_reopen(struct pt_cycle *c, uid_t uid)
{
    int rc = PT_OK;

    for (struct pt_file *f = c ? c->files : NULL; f; f = f->next) {
        int fd = open(f->path, FILE_FLAGS, FILE_MODE);
        if (fd < 0) {
            pt_log(PT_LOG_ERR, "reopening \"%s\" failed: %s", f->path, strerror(errno));
            rc = PT_ERROR;
            continue;
        }
        give_to(fd, f->path, uid);
        /* dup3, not dup2: dup2 would clear close-on-exec on the old number, and a binary
         * upgrade must not leak log descriptors into the new program. */
        if (fd != f->fd && dup3(fd, f->fd, O_CLOEXEC) < 0) {
            pt_log(PT_LOG_ERR, "reopening \"%s\" failed: dup3: %s", f->path, strerror(errno));
            rc = PT_ERROR;
        }
        if (fd != f->fd)
            close(fd);
    }
    return rc;
}
