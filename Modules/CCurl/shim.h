#ifndef DFS_CCURL_SHIM_H
#define DFS_CCURL_SHIM_H

// Typed forwarders for libcurl's variadic entry points, which Swift cannot call.
// Each one only forwards its arguments: no logic lives in C.

#include <curl/curl.h>

/// curl_easy_setopt is variadic; this passes an option that reads a `long`.
static inline CURLcode dfs_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt is variadic; this passes an option that reads a `curl_off_t` (the *_LARGE options).
static inline CURLcode dfs_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt is variadic; this passes an option that reads a pointer (READDATA, WRITEDATA, ERRORBUFFER…).
static inline CURLcode dfs_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt is variadic; this passes an option that reads a C string (URL, CUSTOMREQUEST, COPYPOSTFIELDS…).
static inline CURLcode dfs_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt is variadic; this passes an option that reads a `struct curl_slist *` (HTTPHEADER).
static inline CURLcode dfs_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt is variadic; this passes a `curl_write_callback` (WRITEFUNCTION, HEADERFUNCTION).
static inline CURLcode dfs_curl_easy_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_setopt is variadic; this passes a `curl_read_callback` (READFUNCTION).
static inline CURLcode dfs_curl_easy_setopt_read_callback(CURL *handle, CURLoption option, curl_read_callback value) {
    return curl_easy_setopt(handle, option, value);
}

/// curl_easy_getinfo is variadic; this reads an info of type `long` (RESPONSE_CODE…).
static inline CURLcode dfs_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// curl_easy_getinfo is variadic; this reads an info of type `curl_off_t` (SIZE_DOWNLOAD_T…).
static inline CURLcode dfs_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/// curl_easy_getinfo is variadic; this reads an info of type `char *` (EFFECTIVE_URL…), owned by the handle.
static inline CURLcode dfs_curl_easy_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
