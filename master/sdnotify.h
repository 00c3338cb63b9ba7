/*
 * sdnotify.h: systemd's readiness protocol (Type=notify): datagrams such as "READY=1"
 * sent to the socket named in $NOTIFY_SOCKET.  Without that variable nothing is sent.
 */
#ifndef PT_SDNOTIFY_H
#define PT_SDNOTIFY_H

/* Sends <state> ("READY=1\nMAINPID=42") to $NOTIFY_SOCKET, if set.  Failures are logged
 * once and otherwise ignored: a service manager that stopped listening is no reason to
 * stop serving. */
void pt_sd_notify(const char *state);

/* pt_sd_notify("READY=1") with this process's pid as MAINPID and a STATUS line. */
void pt_sd_ready(const char *status);

#endif
