#ifndef DFS_CSQLITE_SHIM_H
#define DFS_CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift does not import:
/// binding with it makes SQLite copy the value before the bind call returns.
static inline sqlite3_destructor_type dfs_sqlite3_transient(void) {
    return SQLITE_TRANSIENT;
}

#endif
