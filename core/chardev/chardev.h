/*
 * Character devices: the byte streams a QMP monitor is served on, as
 * qemu-storage-daemon 7.2 provides them for --chardev and chardev-add.
 *
 * Supported backends: "file" (output to a file, input from another),
 * "pipe" (named pipes DEVICE.in and DEVICE.out, or DEVICE for both),
 * "null" (never connected: a monitor on it never speaks), "ringbuf" and
 * "memory" (a ring buffer that keeps the newest bytes its frontend
 * writes, read and written with ringbuf-read/-write), "pty" (a
 * pseudo-terminal, connected while its slave side is open), "udp" (a
 * connected datagram socket; no monitor on it), "socket" in server mode, on any address
 * <blockd/socket.h> listens on (UNIX path or abstract name, TCP
 * host/port with its options, vsock, or an fd: an inherited listening
 * socket given by number on the command line, or by its systemd
 * socket-activation name), "socket" in client mode (server=off) on a
 * UNIX or TCP address, and "stdio" (refused under --daemonize).  Every
 * other backend is refused with a message saying so.
 *
 * A client socket connects when it is created and fails if it cannot;
 * with reconnect=N it connects in the background instead, and again N
 * seconds after every failure or lost connection (the first failure
 * since the last connection is reported on stderr, as QEMU does).  It
 * is connected with or without a frontend; a connection nobody reads
 * still notices its peer leaving.
 *
 * A socket chardev serves one connection at a time: while a client is
 * connected it stops accepting, and the next client waiting in the
 * listen queue is accepted when the current one goes.  With "wait"
 * (the default of a server socket unless wait=off), creation blocks until
 * the first client connects, like qemu-storage-daemon.  A chardev accepts
 * only while a frontend (a monitor) is attached.
 *
 * A UNIX socket file is removed when its chardev goes away, and only if
 * blockd created it (and it is still the same file; a relative path is
 * resolved when bound, so --daemonize's chdir does not matter).  A stale
 * socket at the path is replaced; any other file there is never
 * unlinked, so binding over it fails with EADDRINUSE.
 *
 * Main thread only.
 */
#ifndef BLOCKD_CORE_CHARDEV_H
#define BLOCKD_CORE_CHARDEV_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

typedef struct BdChardev BdChardev;

/*
 * What a frontend (a monitor) is told.  @open: a client connected; read
 * from @in_fd and write to @out_fd (both non-blocking, owned by the
 * chardev, the same fd for a socket).  The frontend reports the end of
 * the connection with bd_chardev_disconnect().
 */
typedef struct BdChardevFrontendOps {
    void (*open)(void *opaque, int in_fd, int out_fd);
} BdChardevFrontendOps;

/*
 * Create chardev @id from the QAPI ChardevBackend shape, e.g.
 * {"type": "socket", "data": {"addr": {"type": "unix", "data":
 * {"path": "..."}}, "server": true, "wait": false}}.  QAPI defaults
 * apply: server and wait are true when absent.  Fails if @id exists
 * ("Chardev with id 'x' already exists") or the backend cannot be
 * opened.  Returns the chardev (owned by the registry).
 */
BdChardev *bd_chardev_new(const char *id, JsonObject *backend,
                          GError **errp);

/*
 * The backend types blockd implements, in the order qemu-storage-daemon's
 * "--chardev help" lists them.  NULL-terminated, static.
 */
const char *const *bd_chardev_backend_types(void);

/* The chardev called @id, or NULL. */
BdChardev *bd_chardev_find(const char *id);

/* @chr's id. */
const char *bd_chardev_id(BdChardev *chr);

/*
 * What query-chardev says of @chr: "unix:PATH,server=on" when connected,
 * "disconnected:unix:PATH,server=on" when not, "stdio", ...  (g_free).
 */
char *bd_chardev_filename(BdChardev *chr);

/*
 * Whether a monitor on @chr offers out-of-band execution: QEMU offers it
 * on every backend its monitor I/O thread can watch, not on a ring
 * buffer.
 */
bool bd_chardev_supports_oob(BdChardev *chr);

/* Whether a monitor may use @chr: not a udp chardev. */
bool bd_chardev_can_serve_monitor(BdChardev *chr);

/* Whether a frontend is attached. */
bool bd_chardev_has_frontend(BdChardev *chr);

/*
 * Attach a frontend; fails with "Device 'ID' is in use" if one is
 * already attached.  If a client is already connected (wait=on), @open
 * is called before this returns; otherwise when one connects.
 */
bool bd_chardev_attach(BdChardev *chr, const BdChardevFrontendOps *ops,
                       void *opaque, GError **errp);

/* Detach the frontend; a connected client is disconnected. */
void bd_chardev_detach(BdChardev *chr);

/*
 * The frontend is done with the current connection (EOF, error, or
 * dropping a misbehaving client): close it and accept the next client.
 */
void bd_chardev_disconnect(BdChardev *chr);

/*
 * Remove chardev @id; refused while a frontend uses it ("Chardev 'ID' is
 * busy") and for unknown ids ("Chardev 'ID' not found").
 */
bool bd_chardev_remove(const char *id, GError **errp);

/*
 * Every chardev id, newest first (free with g_ptr_array_unref; the
 * strings are owned by the array).
 */
GPtrArray *bd_chardev_ids(void);

/* Close and remove every chardev, frontends or not (shutdown, tests). */
void bd_chardev_remove_all(void);

/*
 * Whether @chr is a ringbuf or memory chardev; bd_chardev_ringbuf_write()
 * and _read() take only those.
 */
bool bd_chardev_is_ringbuf(BdChardev *chr);

/*
 * Put @len bytes into the ring buffer of @chr as if its frontend wrote
 * them; when full, the oldest bytes are dropped.
 */
void bd_chardev_ringbuf_write(BdChardev *chr, const guint8 *buf, size_t len);

/*
 * Take up to @len bytes (the oldest first) out of the ring buffer of
 * @chr into @buf; returns how many.
 */
size_t bd_chardev_ringbuf_read(BdChardev *chr, guint8 *buf, size_t len);

/* How many bytes the ring buffer of @chr holds. */
size_t bd_chardev_ringbuf_count(BdChardev *chr);

/*
 * What chardev-change does: replace chardev @id, which no frontend may
 * use ("Chardev user does not support chardev hotswap"), by a new one
 * from @backend.  As in QEMU the old one is gone even if the new one
 * cannot be made.
 */
BdChardev *bd_chardev_change(const char *id, JsonObject *backend,
                             GError **errp);

/* The pty path of @chr for ChardevReturn, or NULL if it is not a pty. */
const char *bd_chardev_pty_path(BdChardev *chr);

/*
 * What the QOM tree shows of @chr (/chardevs/ID): its QOM type
 * ("chardev-socket", "chardev-ringbuf"...; static), and for a socket
 * chardev its properties "connected" and "addr" (the bound address of a
 * server, the address a client connects to, as a flat SocketAddress).
 */
const char *bd_chardev_qom_type(BdChardev *chr);
bool bd_chardev_is_socket(BdChardev *chr);
bool bd_chardev_is_connected(BdChardev *chr);
JsonObject *bd_chardev_socket_address(BdChardev *chr);

/* Register chardev-add, chardev-remove, query-chardev and
 * query-chardev-backends with the dispatcher. */
void bd_chardev_register_qmp_commands(void);

#endif /* BLOCKD_CORE_CHARDEV_H */
