/*
 * What the files of chardev/ share: the chardev itself, and the functions
 * of the registry (chardev.c) and the backends (char-socket.c,
 * char-stdio.c) that the others call.  Private to chardev/.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_CHARDEV_CHARDEV_INT_H
#define BLOCKD_CORE_CHARDEV_CHARDEV_INT_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include <blockd/socket.h>

#include "chardev/chardev.h"

typedef enum ChardevKind {
    CHARDEV_SOCKET,
    CHARDEV_STDIO,
    CHARDEV_FD,         /* file, pipe: descriptors opened once */
    CHARDEV_NULL,
    CHARDEV_RINGBUF,    /* ringbuf, memory */
    CHARDEV_PTY,
    CHARDEV_UDP,
} ChardevKind;

struct BdChardev {
    char *id;
    ChardevKind kind;
    const char *type;       /* the backend's name: "file", "memory"... */

    /* what a frontend reads and writes when connected (not sockets) */
    int in_fd;              /* -1: no input */
    int out_fd;

    /* pty (char-pty.c) */
    char *pty_path;         /* the slave side, /dev/pts/N */
    char *pty_filename;     /* "pty:/dev/pts/N" */
    guint pty_timer;        /* looking again for a user of the slave */

    /* ringbuf (char-ringbuf.c) */
    guint8 *cbuf;
    gint64 size;            /* a power of two, or 0 (holds nothing) */
    guint64 prod, cons;     /* bytes written and read, ever */
    int ring_rd;            /* the end of the frontend's pipe we drain */
    guint ring_source;

    /* socket */
    bool server;            /* listening, or connecting as a client */
    JsonObject *addr;       /* flat SocketAddress */
    char *addr_desc;        /* the bound address, as query-chardev says */
    bool nodelay;
    int listen_fd;
    guint listen_source;
    guint retry_source;     /* out of descriptors: accept again later */
    char *accept_what;      /* names the chardev in bd_socket_accept() */
    int conn_fd;
    BdSocketFile *file;     /* a UNIX socket file we made, or NULL */
    gint64 reconnect;       /* client: seconds between attempts; 0: none */
    guint reconnect_timer;
    struct CharConnect *connecting; /* a connection attempt in flight */
    bool connect_err_reported;      /* since the last connection */
    guint hup_source;       /* client without a frontend: notice the end */

    /* stdio, file, pipe: the input ended, there is no next client */
    bool input_eof;

    bool connected;
    const BdChardevFrontendOps *ops;
    void *opaque;
};

/* Whether a chardev of @kind exists (stdio may be used once). */
bool bd_chardev_kind_in_use(ChardevKind kind);

/*
 * Members of the QAPI shape, checked as QEMU's visitor would: NULL (or
 * false) with @errp set when a @required member is missing or a member
 * has another type; @path prefixes the name in the message.
 */
const char *bd_chardev_str_member(JsonObject *obj, const char *name,
                                  const char *path, bool required,
                                  GError **errp);
/* A boolean member; *@val is left alone when it is absent. */
bool bd_chardev_bool_member(JsonObject *obj, const char *name,
                            const char *path, bool *val, GError **errp);
/* An integer member; *@present says whether it was there. */
bool bd_chardev_int_member(JsonObject *obj, const char *name,
                           const char *path, gint64 *val, bool *present,
                           GError **errp);
JsonObject *bd_chardev_obj_member(JsonObject *obj, const char *name,
                                  const char *path, bool required,
                                  GError **errp);

/* ---- socket (char-socket.c) ---- */

/*
 * Open the ChardevSocket @data: listen, and wait for a client if asked;
 * or connect (at once, or in the background with 'reconnect').
 */
bool bd_char_socket_open(BdChardev *chr, JsonObject *data, GError **errp);
/* query-chardev's filename of a socket chardev. */
char *bd_char_socket_filename(BdChardev *chr);
/* Accept the next client, if a frontend is attached and none is. */
void bd_char_socket_listen_watch(BdChardev *chr);
/*
 * The connection ended (bd_chardev_disconnect() closed it): a server
 * accepts the next client, a client with 'reconnect' tries again later.
 */
void bd_char_socket_disconnected(BdChardev *chr);
/* A frontend was attached: it watches the connection from now on. */
void bd_char_socket_attached(BdChardev *chr);
/* Close the sockets and remove the socket file blockd made. */
void bd_char_socket_close(BdChardev *chr);

/* ---- file, pipe (char-fd.c) ---- */

/* Open the ChardevFile @data: out (created), then in if given. */
bool bd_char_file_open(BdChardev *chr, JsonObject *data, GError **errp);
/* Open the ChardevHostdev @data of a pipe: DEVICE.in/.out, or DEVICE. */
bool bd_char_pipe_open(BdChardev *chr, JsonObject *data, GError **errp);

/* ---- pty (char-pty.c) ---- */

/* Open a pseudo-terminal; tells the command line's user where it is. */
bool bd_char_pty_open(BdChardev *chr, JsonObject *data, GError **errp);
/*
 * A frontend is attached, or the connection ended: connect at once if
 * the slave side is open, else look again every second.
 */
void bd_char_pty_watch(BdChardev *chr);
/* Stop looking (the frontend went). */
void bd_char_pty_unwatch(BdChardev *chr);
void bd_char_pty_close(BdChardev *chr);

/* ---- udp (char-udp.c) ---- */

/* Open the ChardevUdp @data: a datagram socket connected to 'remote'. */
bool bd_char_udp_open(BdChardev *chr, JsonObject *data, GError **errp);

/* ---- ringbuf, memory (char-ringbuf.c) ---- */

/* Open the ChardevRingbuf @data (size: 65536 unless given). */
bool bd_char_ringbuf_open(BdChardev *chr, JsonObject *data, GError **errp);
/* Free the buffer and the frontend's pipe. */
void bd_char_ringbuf_close(BdChardev *chr);

/* ---- stdio (char-stdio.c) ---- */

/* Open the ChardevStdio @data (NULL: none): once, never daemonized. */
bool bd_char_stdio_open(BdChardev *chr, JsonObject *data, GError **errp);

#endif /* BLOCKD_CORE_CHARDEV_CHARDEV_INT_H */
