/*
 * sqlite_walbuf.c — a SQLite VFS that gathers the writes of a WAL file until its sync.
 *
 * SQLite writes each WAL frame with two calls: its 24-byte header, then the page. A
 * commit of six frames (one strict audit record) is twelve pwrite(2)s, a batched commit
 * of 45 records about fifty; on the VM this was measured on, a pwrite pair costs 3.7 µs of
 * CPU, and the writes were a third of the writer thread's CPU (docs/performance.md). This
 * VFS wraps SQLite's default ("unix") VFS and, for WAL files only, keeps consecutive writes
 * in a buffer and hands them to the real file as one write when SQLite syncs the WAL, reads
 * it, asks its size, truncates or closes it, or writes elsewhere in it. Every other file
 * (the database, its shared-memory index) is the real VFS's own file, untouched.
 *
 * Why this is safe: a commit becomes visible to other connections, and durable, only
 * through the WAL-index header that SQLite updates after the commit's xSync, and xSync
 * writes the buffer first. Frames still in the buffer belong to a transaction nobody else
 * can see yet; a crash loses them exactly as it loses an uncommitted transaction.
 * Invariant: a connection on this VFS runs with synchronous=FULL, which syncs the WAL at
 * every commit (with NORMAL or OFF, committed frames could stay in the buffer). Only the
 * writer connection uses it (store_walbuf_vfs()); it sets FULL at open and never changes
 * it.
 *
 * The buffer belongs to one open WAL file and is touched only through SQLite's calls on
 * that file, which SQLite serialises (each connection is used by one thread).
 */
#include "store/store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* Buffered bytes at most. The unix VFS writes less than 128 KiB per call (it masks the
 * length with 0x1ffff), so a buffer is flushed before it reaches that: 29 frames of 4 KiB. */
#define WALBUF_MAX (120 * 1024)

typedef struct walbuf_file {
    sqlite3_file base;      /* pMethods = &walbuf_io */
    sqlite3_file *real;     /* the unix VFS's file, in the same allocation, after this */
    char *buf;              /* WALBUF_MAX bytes once used: consecutive bytes not yet */
    size_t len;             /* written, len of them, from file offset off */
    sqlite3_int64 off;
} walbuf_file;

static sqlite3_vfs *walbuf_real;  /* the default VFS at registration */
static sqlite3_vfs walbuf_vfs;
static uint64_t walbuf_writes;    /* real writes of WAL bytes (tests, docs) */

uint64_t store_walbuf_writes(void)
{
    return __atomic_load_n(&walbuf_writes, __ATOMIC_RELAXED);
}

static int real_write(walbuf_file *f, const void *p, int n, sqlite3_int64 off)
{
    __atomic_add_fetch(&walbuf_writes, 1, __ATOMIC_RELAXED);
    return f->real->pMethods->xWrite(f->real, p, n, off);
}

/* Writes what is buffered. On failure the bytes are dropped with the error: SQLite treats
 * a failed WAL write as a failed transaction and rolls it back. */
static int flush(walbuf_file *f)
{
    if (!f->len) return SQLITE_OK;
    int rc = real_write(f, f->buf, (int)f->len, f->off);
    f->len = 0;
    return rc;
}

static int wb_close(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, n, off);
}

static int wb_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    /* not a continuation, or no room: what came before goes first */
    if (f->len && (off != f->off + (sqlite3_int64)f->len || f->len + (size_t)n > WALBUF_MAX)) {
        int rc = flush(f);
        if (rc != SQLITE_OK) return rc;
    }
    if ((size_t)n > WALBUF_MAX / 2) return real_write(f, p, n, off);
    if (!f->buf && !(f->buf = malloc(WALBUF_MAX)))
        return real_write(f, p, n, off); /* no memory: unbuffered, still correct */
    if (!f->len) f->off = off;
    memcpy(f->buf + f->len, p, (size_t)n);
    f->len += (size_t)n;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *pf, sqlite3_int64 size)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *pf, int flags)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *pf, sqlite3_int64 *size)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

/* The rest only pass through, writing the buffer first where the file's contents or
 * size could matter. */
static int wb_lock(sqlite3_file *pf, int l)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xLock(f->real, l);
}

static int wb_unlock(sqlite3_file *pf, int l)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xUnlock(f->real, l);
}

static int wb_check_reserved(sqlite3_file *pf, int *out)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *pf, int op, void *arg)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_characteristics(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* Version 1 methods: a WAL file has no shared memory and SQLite does not memory-map it. */
static const sqlite3_io_methods walbuf_io = {
    .iVersion = 1,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
};

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags,
                   int *out_flags)
{
    (void)vfs;
    /* Any file but a WAL is the real VFS's own, in the space SQLite gave us. */
    if (!(flags & SQLITE_OPEN_WAL))
        return walbuf_real->xOpen(walbuf_real, name, pf, flags, out_flags);
    walbuf_file *f = (walbuf_file *)pf;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = walbuf_real->xOpen(walbuf_real, name, f->real, flags, out_flags);
    /* pMethods stays NULL on failure: SQLite then does not call xClose */
    if (rc == SQLITE_OK) f->base.pMethods = &walbuf_io;
    return rc;
}

/* Everything else the VFS does (delete, access, full path, randomness, time…) is the real
 * VFS's. */
static int wb_delete(sqlite3_vfs *v, const char *n, int sync)
{
    (void)v;
    return walbuf_real->xDelete(walbuf_real, n, sync);
}

static int wb_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
    (void)v;
    return walbuf_real->xAccess(walbuf_real, n, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *v, const char *n, int nout, char *out)
{
    (void)v;
    return walbuf_real->xFullPathname(walbuf_real, n, nout, out);
}

static void *wb_dl_open(sqlite3_vfs *v, const char *n)
{
    (void)v;
    return walbuf_real->xDlOpen(walbuf_real, n);
}

static void wb_dl_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    walbuf_real->xDlError(walbuf_real, n, out);
}

static void (*wb_dl_sym(sqlite3_vfs *v, void *h, const char *n))(void)
{
    (void)v;
    return walbuf_real->xDlSym(walbuf_real, h, n);
}

static void wb_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    walbuf_real->xDlClose(walbuf_real, h);
}

static int wb_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return walbuf_real->xRandomness(walbuf_real, n, out);
}

static int wb_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return walbuf_real->xSleep(walbuf_real, us);
}

static int wb_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return walbuf_real->xCurrentTime(walbuf_real, out);
}

static int wb_get_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return walbuf_real->xGetLastError ? walbuf_real->xGetLastError(walbuf_real, n, out) : 0;
}

static int wb_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return walbuf_real->xCurrentTimeInt64(walbuf_real, out);
}

static void walbuf_register(void)
{
    walbuf_real = sqlite3_vfs_find(NULL);
    if (!walbuf_real || walbuf_real->iVersion < 2 || !walbuf_real->xCurrentTimeInt64) {
        walbuf_real = NULL;
        return;
    }
    walbuf_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(walbuf_file) + walbuf_real->szOsFile,
        .mxPathname = walbuf_real->mxPathname,
        .zName = "tg-walbuf",
        .xOpen = wb_open,
        .xDelete = wb_delete,
        .xAccess = wb_access,
        .xFullPathname = wb_full_pathname,
        .xDlOpen = wb_dl_open,
        .xDlError = wb_dl_error,
        .xDlSym = wb_dl_sym,
        .xDlClose = wb_dl_close,
        .xRandomness = wb_randomness,
        .xSleep = wb_sleep,
        .xCurrentTime = wb_current_time,
        .xGetLastError = wb_get_last_error,
        .xCurrentTimeInt64 = wb_current_time_int64,
    };
    if (sqlite3_vfs_register(&walbuf_vfs, 0) != SQLITE_OK) walbuf_real = NULL;
}

const char *store_walbuf_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, walbuf_register);
    return walbuf_real ? walbuf_vfs.zName : NULL; /* NULL: SQLite's default VFS */
}
