#ifndef DFS_CMICROHTTPD_SHIM_H
#define DFS_CMICROHTTPD_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <malloc.h>
#include <poll.h>

/// Fixed-arity MHD_start_daemon(..., options, MHD_OPTION_END): variadic, so Swift can't call it (exact C types here).
/// The HTTPS options are left out when `tls_cert_pem` is NULL: without MHD_USE_TLS, MHD logs an error for them.
static inline struct MHD_Daemon *dfs_mhd_start_daemon(
    unsigned int flags, uint16_t port,
    MHD_AccessHandlerCallback handler, void *handler_cls,
    MHD_RequestCompletedCallback completed, void *completed_cls,
    MHD_LogCallback logger, void *logger_cls,
    MHD_NotifyConnectionCallback notify_connection, void *notify_connection_cls,
    const struct sockaddr *address,
    unsigned int thread_pool_size, size_t connection_memory_limit, unsigned int connection_timeout_seconds,
    unsigned int connection_limit, unsigned int per_ip_connection_limit,
    const char *tls_cert_pem, const char *tls_key_pem) {
    if (tls_cert_pem == NULL) {
        return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
                                MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, notify_connection_cls,
                                MHD_OPTION_NOTIFY_CONNECTION, notify_connection, notify_connection_cls,
                                MHD_OPTION_SOCK_ADDR, address,
                                MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
                                MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                                MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip_connection_limit,
                                MHD_OPTION_END);
    }
    return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
                            MHD_OPTION_EXTERNAL_LOGGER, logger, logger_cls,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, notify_connection_cls,
                            MHD_OPTION_SOCK_ADDR, address,
                            MHD_OPTION_THREAD_POOL_SIZE, thread_pool_size,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_seconds,
                            MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip_connection_limit,
                            MHD_OPTION_HTTPS_MEM_CERT, tls_cert_pem,
                            MHD_OPTION_HTTPS_MEM_KEY, tls_key_pem,
                            MHD_OPTION_END);
}

/// Fixed-arity MHD_get_daemon_info(daemon, info_type): variadic, so Swift can't call it.
static inline const union MHD_DaemonInfo *dfs_mhd_get_daemon_info(
    struct MHD_Daemon *daemon, enum MHD_DaemonInfoType info_type) {
    return MHD_get_daemon_info(daemon, info_type);
}

/// Fixed-arity MHD_get_connection_info(connection, info_type): variadic, so Swift can't call it.
static inline const union MHD_ConnectionInfo *dfs_mhd_get_connection_info(
    struct MHD_Connection *connection, enum MHD_ConnectionInfoType info_type) {
    return MHD_get_connection_info(connection, info_type);
}

#ifndef POLLRDHUP
#define POLLRDHUP 0x2000
#endif

/// Whether the client of a (suspended) connection has closed its end: libmicrohttpd does not watch suspended
/// connections, so it would only find out when it writes. 1 when the socket reports a hang-up or end of stream,
/// 0 otherwise (also when the descriptor cannot be had).
static inline int dfs_mhd_peer_closed(struct MHD_Connection *connection) {
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL) return 0;
    struct pollfd watched = {.fd = info->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&watched, 1, 0) <= 0) return 0;
    if (watched.revents & (POLLRDHUP | POLLHUP | POLLERR)) return 1;
    if (watched.revents & POLLIN) {
        char byte;
        return recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    return 0;
}

/// glibc's mallopt(M_ARENA_MAX, n): Swift's Glibc module does not import <malloc.h>.
static inline int dfs_limit_malloc_arenas(int arenas) {
    return mallopt(M_ARENA_MAX, arenas);
}

/// glibc's malloc_trim(0): gives free pages inside the heaps back to the kernel.
static inline int dfs_release_free_memory(void) {
    return malloc_trim(0);
}

#endif
