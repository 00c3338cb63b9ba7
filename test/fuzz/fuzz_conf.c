/*
 * fuzz_conf.c: libFuzzer target for the configuration loader (pt_cycle_load).
 *
 * An input is a configuration file.  It is written to portier.conf in a directory of its
 * own (the prefix, where relative paths lead) and loaded as `portier -t` loads it, then
 * everything is freed: no process is started and no socket opened.  A load that fails must
 * say why (a non-empty message); ASan's leak check at exit covers the freeing.
 *
 * The loader touches the file system (it opens logs, creating them, reads included files,
 * certificates and keys) and resolves upstream names.  A fuzzer writes any path there, so
 * while a configuration is loading, the calls of portier's code are redirected (the link
 * wraps them, see CMakeLists.txt):
 *  - open() for writing or creating opens /dev/null instead, once the directory exists (as
 *    the real call would need), so that nothing is created or appended to anywhere;
 *  - openat() for writing or creating (the log files' pt_file_open_append) opens a sink
 *    file in the input's own directory instead: a regular file, as a log would be;
 *  - open(), fopen() and stat() refuse paths under /dev, /proc and /sys and anything but
 *    regular files and directories (a FIFO or /dev/zero would block or never end);
 *  - getaddrinfo() resolves numeric addresses and "localhost" only (no DNS queries).
 * libconfig's own "@include" directive opens its file inside libconfig, out of reach of the
 * wrap: inputs holding one are left out.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cycle.h"
#include "fuzz.h"
#include "core/log.h"

static char dir[64] = "/tmp/pt-fuzz-conf.XXXXXX";
static char conf[96];
static int loading; /* the wraps apply only while a configuration loads */

/* Where libFuzzer writes the input of a crash (-artifact_prefix, -exact_artifact_path): it
 * does so with fopen() from the crash handler, while the configuration is still loading,
 * and its calls are wrapped like portier's. */
static const char *artifact_prefix = "./", *artifact_path;

int __real_open(const char *path, int flags, ...);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
FILE *__real_fopen(const char *path, const char *mode);
int __real_stat(const char *path, struct stat *st);
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_open(const char *path, int flags, ...);
FILE *__wrap_fopen(const char *path, const char *mode);
int __wrap_stat(const char *path, struct stat *st);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

static int under(const char *path, const char *top)
{
    size_t n = strlen(top);
    return strncmp(path, top, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Returns 1 if <path> is where libFuzzer saves a crash: it may be written. */
static int is_artifact(const char *path)
{
    if (artifact_path)
        return strcmp(path, artifact_path) == 0;
    return strncmp(path, artifact_prefix, strlen(artifact_prefix)) == 0;
}

/* Returns 1 (errno set) if <path> must not be read while loading: under /dev, /proc or
 * /sys once resolved, or neither a regular file nor a directory (a FIFO, a socket). */
static int forbidden(const char *path)
{
    char real[PATH_MAX];
    struct stat st;

    if (realpath(path, real) == NULL)
        return 0; /* the real call fails the same way */
    if (under(real, "/dev") || under(real, "/proc") || under(real, "/sys") ||
        (__real_stat(real, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
        errno = EACCES;
        return 1;
    }
    return 0;
}

int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (!loading || is_artifact(path))
        return __real_open(path, flags, mode);
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT)) {
        char copy[PATH_MAX];
        struct stat st;

        snprintf(copy, sizeof(copy), "%s", path);
        if (__real_stat(dirname(copy), &st) != 0)
            return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        return __real_open("/dev/null", (flags & ~(O_CREAT | O_EXCL | O_TRUNC)) | O_CLOEXEC);
    }
    if (forbidden(path))
        return -1;
    return __real_open(path, flags, mode);
}

int __wrap_openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    char sink[128];

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (!loading || ((flags & O_ACCMODE) == O_RDONLY && !(flags & O_CREAT)))
        return __real_openat(dirfd, path, flags, mode);
    snprintf(sink, sizeof(sink), "%s/sink", dir);
    return __real_open(sink, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (!loading || is_artifact(path))
        return __real_fopen(path, mode);
    if (strpbrk(mode, "wa+") != NULL) {
        errno = EACCES;
        return NULL;
    }
    return forbidden(path) ? NULL : __real_fopen(path, mode);
}

int __wrap_stat(const char *path, struct stat *st)
{
    if (loading && forbidden(path))
        return -1;
    return __real_stat(path, st);
}

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct addrinfo h = {0};

    if (!loading || node == NULL || strcmp(node, "localhost") == 0)
        return __real_getaddrinfo(node, service, hints, res);
    if (hints)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}

static void remove_dir(void)
{
    char sink[128];

    snprintf(sink, sizeof(sink), "%s/sink", dir);
    unlink(sink);
    unlink(conf);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (mkdtemp(dir) == NULL) {
        perror("fuzz_conf: mkdtemp");
        exit(1);
    }
    snprintf(conf, sizeof(conf), "%s/portier.conf", dir);
    for (int i = 1; i < *argc; i++) {
        const char *a = (*argv)[i];
        if (strncmp(a, "-artifact_prefix=", 17) == 0)
            artifact_prefix = a + 17;
        else if (strncmp(a, "-exact_artifact_path=", 21) == 0)
            artifact_path = a + 21;
    }
    atexit(remove_dir);
    /* Warnings of accepted files ("... is deprecated") would drown libFuzzer's output. */
    pt_log_level = PT_LOG_CRIT + 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    struct pt_cycle *c;
    FILE *f;

    if (memmem(data, size, "@include", 8) != NULL)
        return -1;
    f = fopen(conf, "w");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        fuzz_fail("cannot write %s: %s", conf, strerror(errno));
    loading = 1;
    c = pt_cycle_load(conf, dir, err, sizeof(err));
    loading = 0;
    fuzz_check(memchr(err, '\0', sizeof(err)) != NULL, "error message not terminated");
    fuzz_check(c != NULL || err[0] != '\0', "refused without a message");
    pt_cycle_free(c);
    return 0;
}
