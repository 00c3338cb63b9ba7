/*
 * files.c: the log files of a cycle, opened in the master and reopened on USR1, and how
 * portier opens a file it appends to (see pt_file_open_append() for the rules).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dup3; CMake defines it for the whole build */
#endif
#include "core/files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cycle.h"
#include "core/log.h"
#include "core/pool.h"

/* O_NONBLOCK only while opening: a FIFO planted at a log's path must not hang the master
 * (opening it for writing without a reader waits); it fails with ENXIO instead. */
#define FILE_FLAGS (O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK)
#define FILE_MODE  0644

/* Why the last pt_file_open_append() refused a file, for pt_file_strerror(). */
static char refusal[512];

static void file_close(void *arg)
{
    struct pt_file *f = arg;

    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Opens the directory of <path> (O_PATH) and points *<base> at the last component.
 * Returns the directory's fd, or -1 with errno set. */
static int open_dir(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];

    if (slash == NULL) {
        *base = path;
        return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    *base = slash + 1;
    if (**base == '\0') {
        errno = EISDIR;
        return -1;
    }
    if (slash == path) {
        dir[0] = '/';
        dir[1] = '\0';
    } else if ((size_t)(slash - path) < sizeof(dir)) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    } else {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Whether uid <uid> may be trusted with what this process writes: root or ourselves. */
static int trusted_uid(uid_t uid)
{
    return uid == 0 || uid == geteuid();
}

/* Whether the symbolic link <base> in directory <dfd> may be followed: it belongs to
 * root (or to this process's user), and it sits in a directory of root's (or ours) where
 * nobody else can replace it between our checks and our open (not writable by group or
 * others, or sticky).  Sets <refusal> when not, naming <path>. */
static int link_trusted(int dfd, const char *base, const char *path)
{
    struct stat l, d;

    if (fstatat(dfd, base, &l, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(l.st_mode) ||
        fstat(dfd, &d) != 0)
        return 0;
    if (!trusted_uid(l.st_uid)) {
        snprintf(refusal, sizeof(refusal),
                 "\"%s\" is a symbolic link owned by uid %u, not root: portier does not "
                 "follow it (name the file itself in the configuration)",
                 path, (unsigned)l.st_uid);
        return 0;
    }
    if (!trusted_uid(d.st_uid) || ((d.st_mode & (S_IWGRP | S_IWOTH)) && !(d.st_mode & S_ISVTX))) {
        snprintf(refusal, sizeof(refusal),
                 "\"%s\" is a symbolic link in a directory others can write to: portier "
                 "does not follow it (name the file itself in the configuration, or make "
                 "the directory writable by root only)",
                 path);
        return 0;
    }
    return 1;
}

/* Checks what <fd> (just opened at <path>) is before anything is written into it.  A
 * regular file with another hard link may be a link planted to some other file (where
 * fs.protected_hardlinks is off): refused with EMLINK. */
static int check_opened(int fd, const char *path)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return PT_ERROR;
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
        snprintf(refusal, sizeof(refusal),
                 "\"%s\" has %lu hard links: portier does not write into a file that is "
                 "also elsewhere (remove the other links)",
                 path, (unsigned long)st.st_nlink);
        errno = EMLINK;
        return PT_ERROR;
    }
    return PT_OK;
}

/* Opens <base> in <dfd> for appending, creating it if missing; sets *<created>. */
static int open_at(int dfd, const char *base, const char *path, int *created)
{
    int fd;

    /* A few rounds, for a file removed or created between our two opens. */
    for (int round = 0; round < 4; round++) {
        fd = openat(dfd, base, FILE_FLAGS | O_CREAT | O_EXCL | O_NOFOLLOW, FILE_MODE);
        if (fd >= 0) {
            *created = 1;
            return fd;
        }
        if (errno != EEXIST)
            return -1;
        fd = openat(dfd, base, FILE_FLAGS | O_NOFOLLOW);
        if (fd >= 0)
            return fd;
        if (errno == ELOOP) {
            if (!link_trusted(dfd, base, path)) {
                errno = ELOOP;
                return -1;
            }
            /* Root's link may name a file still to create (not given away: the link
             * decides where it is, not us). */
            return openat(dfd, base, FILE_FLAGS | O_CREAT, FILE_MODE);
        }
        if (errno != ENOENT)
            return -1;
    }
    return -1;
}

/* As root, tells when a file the workers must reopen after us is not theirs and was not
 * created by portier, so was not given to them: they will fail, and why is said here. */
static void warn_not_given(int fd, const char *path, uid_t uid)
{
    struct stat st;

    if (uid == (uid_t)-1 || geteuid() != 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid == uid || (st.st_mode & S_IWOTH))
        return;
    pt_log(PT_LOG_WARN,
           "\"%s\" belongs to uid %u and was not created by portier: it is not given to the "
           "workers' uid %u, who cannot reopen it (let logrotate leave it to portier to "
           "create, or create it for that user)",
           path, (unsigned)st.st_uid, (unsigned)uid);
}

int pt_file_open_append(const char *path, uid_t owner, int *created)
{
    const char *base;
    int dfd, fd, err, made = 0;

    refusal[0] = '\0';
    if (created)
        *created = 0;
    dfd = open_dir(path, &base);
    if (dfd < 0)
        return -1;
    fd = open_at(dfd, base, path, &made);
    err = errno;
    close(dfd);
    errno = err;
    if (fd < 0)
        return -1;
    if (check_opened(fd, path) != PT_OK || fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) < 0) {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    /* Only a file this very call created is given away: it is a new inode that nobody
     * else can have linked anywhere, and fchown on our own descriptor follows no path. */
    if (made && owner != (uid_t)-1 && geteuid() == 0 && owner != 0 &&
        fchown(fd, owner, (gid_t)-1) != 0)
        pt_log(PT_LOG_WARN, "chown(\"%s\", %u) failed: %s", path, (unsigned)owner, strerror(errno));
    if (!made)
        warn_not_given(fd, path, owner);
    if (created)
        *created = made;
    return fd;
}

const char *pt_file_strerror(int err)
{
    if ((err == ELOOP || err == EMLINK) && refusal[0])
        return refusal;
    return strerror(err);
}

int pt_file_unchanged(int fd, const char *path)
{
    struct stat held, there;

    /* A stat that follows a link is harmless: nothing is opened or written. */
    return fstat(fd, &held) == 0 && stat(path, &there) == 0 && held.st_dev == there.st_dev &&
           held.st_ino == there.st_ino;
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
    f->fd = pt_file_open_append(path, (uid_t)-1, NULL);
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

int pt_files_reopen(struct pt_cycle *c, uid_t uid)
{
    int rc = PT_OK;

    for (struct pt_file *f = c ? c->files : NULL; f; f = f->next) {
        /* Still the file we write to (not rotated, or copytruncate): nothing to do, and a
         * worker need not be able to open it by name. */
        if (pt_file_unchanged(f->fd, f->path))
            continue;
        int fd = pt_file_open_append(f->path, uid, NULL);
        if (fd < 0) {
            pt_log(PT_LOG_ERR, "cannot reopen \"%s\": %s", f->path, pt_file_strerror(errno));
            rc = PT_ERROR;
            continue;
        }
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
