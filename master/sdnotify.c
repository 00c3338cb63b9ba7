/* sdnotify.c: systemd notifications. */
#include "master/sdnotify.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"

void pt_sd_notify(const char *state)
{
    static int warned;
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len;
    int fd;

    if (path == NULL || path[0] == '\0' || (len = strlen(path)) >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    /* "@name" is an abstract socket: its name starts with a NUL byte. */
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
        if (!warned++)
            pt_log(PT_LOG_WARN, "cannot notify the service manager at %s: %m", path);
    }
    if (fd >= 0)
        close(fd);
}

void pt_sd_ready(const char *status)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d\nSTATUS=%s", (int)getpid(), status);
    pt_sd_notify(msg);
}
