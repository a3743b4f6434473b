// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not define. Declared
// here by their glibc signatures (off64_t is long long on every Linux ABI Swift targets) and wrapped, so the
// Swift side sees plain integer functions.
#ifndef DFS_CLINUX_SHIM_H
#define DFS_CLINUX_SHIM_H

extern int syncfs(int fd);
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);

/// syncfs(2): writes back every dirty page and inode of the file system holding `fd`, then flushes the device.
static inline int dfs_syncfs(int fd) { return syncfs(fd); }

/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE (2): starts writeback of the range without waiting for it.
static inline int dfs_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, offset, count, 2);
}

#endif
