/*
 * blockd plugin ABI: sockets handed over by systemd socket activation.
 *
 * Wherever an address of type fd is accepted (addr.type=fd,addr.str=NAME),
 * NAME may be a name from LISTEN_FDNAMES: the daemon took the passed
 * sockets at start-up, and a plugin that listens on an fd address asks for
 * them here before treating NAME as a number.
 */
#ifndef BLOCKD_SOCKET_ACTIVATION_H
#define BLOCKD_SOCKET_ACTIVATION_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The socket passed by socket activation under @name, or -1 if there is
 * none (left).  Each fd is handed out once: the caller owns it from then
 * on.  Names that repeat give their fds in order, one per call.  Main
 * thread.
 */
int bd_socket_activation_fd(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* BLOCKD_SOCKET_ACTIVATION_H */
