#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
/*
 * curl_easy_setopt and curl_easy_getinfo are variadic C functions, which Swift cannot call.
 * One typed, non-variadic static inline wrapper per argument kind.
 */
#include <curl/curl.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

static inline CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_off_t(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*ccurl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
static inline CURLcode ccurl_setopt_write_cb(CURL *h, ccurl_data_cb cb) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cb); }
static inline CURLcode ccurl_setopt_header_cb(CURL *h, ccurl_data_cb cb) { return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cb); }
static inline CURLcode ccurl_setopt_read_cb(CURL *h, ccurl_data_cb cb) { return curl_easy_setopt(h, CURLOPT_READFUNCTION, cb); }
typedef int (*ccurl_seek_cb)(void *userdata, curl_off_t offset, int origin);
static inline CURLcode ccurl_setopt_seek_cb(CURL *h, ccurl_seek_cb cb) { return curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, cb); }

static inline CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode ccurl_getinfo_off_t(CURL *h, CURLINFO i, curl_off_t *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode ccurl_getinfo_double(CURL *h, CURLINFO i, double *out) { return curl_easy_getinfo(h, i, out); }

/*
 * The private-address guard (CURLOPT_OPENSOCKETFUNCTION): runs on the address curl is about to
 * connect to, after DNS, so a name that resolves (or re-resolves) to an internal address is refused.
 * `clientp` points to an int set to 1 when an address was refused.
 */
static inline int ccurl_address_is_private(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 100 && (a[1] & 0xC0) == 64) ||
               (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xF0) == 16) || (a[0] == 192 && a[1] == 168) ||
               (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) || (a[0] == 198 && (a[1] & 0xFE) == 18) ||
               (a[0] == 198 && a[1] == 51 && a[2] == 100) || (a[0] == 203 && a[1] == 0 && a[2] == 113) || a[0] >= 224;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
        if (memcmp(a, mapped, 12) == 0) {
            struct sockaddr_in v4;
            memset(&v4, 0, sizeof v4);
            v4.sin_family = AF_INET;
            memcpy(&v4.sin_addr, a + 12, 4);
            return ccurl_address_is_private((const struct sockaddr *)&v4);
        }
        static const unsigned char zero[15] = {0};
        if (memcmp(a, zero, 15) == 0) return 1;                       /* :: and ::1 */
        return (a[0] & 0xFE) == 0xFC ||                               /* fc00::/7 unique local */
               (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) ||             /* fe80::/10 link-local */
               (a[0] == 0xFE && (a[1] & 0xC0) == 0xC0) ||             /* fec0::/10 site-local */
               a[0] == 0xFF ||                                        /* multicast */
               (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0D && a[3] == 0xB8) || /* documentation */
               (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xFF && a[3] == 0x9B);   /* NAT64 */
    }
    return 1;
}

static inline curl_socket_t ccurl_guarded_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    (void)purpose;
    if (ccurl_address_is_private(&address->addr)) {
        if (clientp) *(int *)clientp = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

static inline CURLcode ccurl_setopt_private_address_guard(CURL *h, int *refused) {
    CURLcode code = curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, ccurl_guarded_opensocket);
    if (code == CURLE_OK) code = curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, (void *)refused);
    return code;
}

/* The textual address (no port) is private: for checks of literal hosts in configuration. */
static inline int ccurl_text_address_is_private(int family, const void *bytes) {
    if (family == AF_INET) {
        struct sockaddr_in v4;
        memset(&v4, 0, sizeof v4);
        v4.sin_family = AF_INET;
        memcpy(&v4.sin_addr, bytes, 4);
        return ccurl_address_is_private((const struct sockaddr *)&v4);
    }
    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof v6);
    v6.sin6_family = AF_INET6;
    memcpy(&v6.sin6_addr, bytes, 16);
    return ccurl_address_is_private((const struct sockaddr *)&v6);
}

#endif
