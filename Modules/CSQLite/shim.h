#ifndef DFS_CSQLITE_SHIM_H
#define DFS_CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift does not import:
/// binding with it makes SQLite copy the value before the bind call returns.
static inline sqlite3_destructor_type dfs_sqlite3_transient(void) {
    return SQLITE_TRANSIENT;
}

/// sqlite3_config is variadic. Turns off SQLite's memory statistics, before the library initializes (the first
/// open does that): with them on, the default, every allocation of every connection in the process takes one global
/// mutex, and 16 threads each on their own connection queued on it. Returns SQLITE_MISUSE when SQLite is already
/// initialized.
static inline int dfs_sqlite3_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/// The bytes SQLite counts as allocated: 0 while memory statistics are off.
static inline long long dfs_sqlite3_memory_used(void) {
    return (long long)sqlite3_memory_used();
}

#endif
