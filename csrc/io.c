/* io.c -- reading rows of a file into a batch buffer (data larger than memory, nncore/data.py).
 *
 * A memmapped input is read with pread rather than through its mapping: a page faulted in
 * through a mapping stays in the process's resident set (with its neighbours, the kernel's
 * fault-around), so an epoch of random rows would make the whole file resident. pread copies
 * from the page cache and maps nothing. One call per batch, without the GIL. */
#define _POSIX_C_SOURCE 200809L
#include "nncore.h"

#include <errno.h>
#if defined(_WIN32)
int nc_read_rows(int fd, int64_t base, int64_t rowbytes, const int64_t *idx, ptrdiff_t n, char *dst) {
    (void)fd; (void)base; (void)rowbytes; (void)idx; (void)n; (void)dst;
    return ENOSYS;
}
#else
#include <sys/types.h>
#include <unistd.h>

/* read len bytes at file position pos into dst, retrying short reads and EINTR */
static int read_full(int fd, char *dst, int64_t len, int64_t pos) {
    while (len > 0) {
        ssize_t got = pread(fd, dst, (size_t)len, (off_t)pos);
        if (got < 0) {
            if (errno == EINTR) continue;
            return errno ? errno : EIO;
        }
        if (got == 0) return -1;
        dst += got;
        pos += got;
        len -= got;
    }
    return 0;
}

int nc_read_rows(int fd, int64_t base, int64_t rowbytes, const int64_t *idx, ptrdiff_t n, char *dst) {
    if (idx == NULL) return read_full(fd, dst, rowbytes * (int64_t)n, base);
    for (ptrdiff_t r = 0; r < n; ++r) {
        int err = read_full(fd, dst + r * rowbytes, rowbytes, base + idx[r] * rowbytes);
        if (err) return err;
    }
    return 0;
}
#endif
