/*
 * sqlite_walbuf.c — a SQLite VFS that turns the audit writer's many small file calls into
 * few large ones: a commit's WAL frames, and a checkpoint's copy of them into the database.
 *
 * On the VM this was measured on, a system call is expensive (a pwrite pair cost 3.7 µs
 * of CPU), and SQLite makes small ones:
 *   - a commit writes each WAL frame with two calls, its 24-byte header and its page;
 *   - a checkpoint copies each page with two calls, a pread of the frame from the WAL and
 *     a pwrite into the database; at one 2 KB record per page that was one pread and one
 *     pwrite per audited call, a third of the writer thread's CPU and most of the
 *     checkpointer's (docs/performance.md).
 * This VFS wraps SQLite's default ("unix") VFS:
 *   - writes (WAL and database file): consecutive writes are gathered in a buffer and
 *     handed to the real file as one write when SQLite does anything else with that file
 *     (sync, read, size, truncate, lock, shared-memory lock or barrier, file control,
 *     close) or writes elsewhere in it. A checkpoint writes pages in ascending order, and
 *     audit records fill pages at the end of the file, so its writes are mostly one run.
 *   - reads of a WAL inside a checkpoint (store_walbuf_checkpoint() only): a read that
 *     misses fetches up to 120 KiB from that offset at once, and the next reads are served
 *     from it. The checkpoint reads frames in page order, which for appended records is
 *     almost file order.
 * Every other file (journals, temporary files) is the real VFS's own, untouched.
 *
 * Why gathering writes is safe: another connection learns of new content only through
 * the WAL index in shared memory. A commit updates it after xSync of the WAL; a
 * checkpoint publishes its progress (nBackfill) after xSync of the database; and the
 * WAL-index updates go through xShmBarrier or xShmLock. Each of these writes the buffer
 * first, so nothing another connection may read is ever only in a buffer, and a crash
 * loses buffered bytes exactly as it loses an unfinished transaction or checkpoint.
 * Invariant: connections on this VFS run with synchronous=FULL (set at open, never
 * changed), so every commit and every checkpoint calls xSync.
 *
 * Why read-ahead is safe: a checkpoint copies only frames up to the mxSafeFrame it chose
 * at its start, which were fully written and synced before; frames past them may be
 * written meanwhile by the writer connection, and the read-ahead may hold torn copies of
 * those, but this checkpoint never asks for them, and the buffer is valid for one
 * checkpoint only (scope ids are unique, so a later checkpoint never reuses it). A write
 * or truncation of the file through this handle drops it too.
 *
 * The buffers belong to one open file and are touched only through SQLite's calls on that
 * file, which SQLite serialises (each connection is used by one thread).
 */
#include "store/store_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* Gathered or read-ahead bytes at most. The unix VFS writes less than 128 KiB per call (it
 * masks the length with 0x1ffff), so a buffer is flushed before it reaches that: 29
 * frames of 4 KiB. */
#define WALBUF_MAX (120 * 1024)

typedef struct walbuf_file {
    sqlite3_file base;      /* pMethods = &walbuf_wal_io or a database table */
    sqlite3_file *real;     /* the unix VFS's file, in the same allocation, after this */
    int wal;                /* 1: a WAL file; 0: a main database file */
    char *buf;              /* WALBUF_MAX bytes once used: consecutive bytes not yet */
    size_t len;             /* written, len of them, from file offset off */
    sqlite3_int64 off;
    /* Read-ahead (WAL files): ra_len bytes of the file from ra_off, read during the
     * checkpoint whose scope id is ra_scope; ra_size is the file's size then (-1: not
     * asked yet). */
    char *ra;
    size_t ra_len;
    sqlite3_int64 ra_off, ra_size;
    uint64_t ra_scope;
} walbuf_file;

static sqlite3_vfs *walbuf_real;  /* the default VFS at registration */
static sqlite3_vfs walbuf_vfs;
static store_walbuf_counts walbuf_counts; /* updated atomically (tests, docs) */
static uint64_t walbuf_scopes;            /* last checkpoint scope id handed out */
static __thread uint64_t walbuf_scope;    /* this thread's checkpoint in progress, or 0 */

static void count(uint64_t *c)
{
    __atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

void store_walbuf_counts_get(store_walbuf_counts *out)
{
    out->wal_writes = __atomic_load_n(&walbuf_counts.wal_writes, __ATOMIC_RELAXED);
    out->db_writes = __atomic_load_n(&walbuf_counts.db_writes, __ATOMIC_RELAXED);
    out->db_pages = __atomic_load_n(&walbuf_counts.db_pages, __ATOMIC_RELAXED);
    out->wal_reads = __atomic_load_n(&walbuf_counts.wal_reads, __ATOMIC_RELAXED);
}

int store_walbuf_checkpoint(struct sqlite3 *db, const char *name, int mode, int *log, int *copied)
{
    uint64_t outer = walbuf_scope;
    walbuf_scope = __atomic_add_fetch(&walbuf_scopes, 1, __ATOMIC_RELAXED);
    int rc = sqlite3_wal_checkpoint_v2(db, name, mode, log, copied);
    walbuf_scope = outer;
    return rc;
}

static int real_write(walbuf_file *f, const void *p, int n, sqlite3_int64 off)
{
    count(f->wal ? &walbuf_counts.wal_writes : &walbuf_counts.db_writes);
    return f->real->pMethods->xWrite(f->real, p, n, off);
}

/* Writes what is gathered. On failure the bytes are dropped with the error: SQLite treats
 * a failed write as a failed transaction (or checkpoint) and does not go on. */
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
    free(f->ra);
    f->buf = f->ra = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

/* Fills the read-ahead buffer from off, for a read of n bytes in the current checkpoint.
 * 0 on success; -1 to read the plain way (past the end, no memory, an error). */
static int fill_readahead(walbuf_file *f, int n, sqlite3_int64 off)
{
    if (f->ra_scope != walbuf_scope) {
        f->ra_scope = walbuf_scope;
        f->ra_len = 0;
        f->ra_size = -1;
    }
    /* the WAL grows while we copy: ask its size again when a read goes past the last */
    if ((f->ra_size < 0 || off + n > f->ra_size) &&
        f->real->pMethods->xFileSize(f->real, &f->ra_size) != SQLITE_OK) {
        f->ra_size = -1;
        return -1;
    }
    if (off + n > f->ra_size) return -1;
    if (!f->ra && !(f->ra = malloc(WALBUF_MAX))) return -1;
    sqlite3_int64 avail = f->ra_size - off;
    size_t len = avail < WALBUF_MAX ? (size_t)avail : WALBUF_MAX;
    f->ra_len = 0;
    count(&walbuf_counts.wal_reads);
    if (f->real->pMethods->xRead(f->real, f->ra, (int)len, off) != SQLITE_OK) return -1;
    f->ra_off = off;
    f->ra_len = len;
    return 0;
}

static int wb_read(sqlite3_file *pf, void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    if (rc != SQLITE_OK) return rc;
    if (f->wal && walbuf_scope && n > 0 && n <= WALBUF_MAX / 4) {
        int hit = f->ra_scope == walbuf_scope && off >= f->ra_off &&
                  off + n <= f->ra_off + (sqlite3_int64)f->ra_len;
        if (hit || fill_readahead(f, n, off) == 0) {
            memcpy(p, f->ra + (off - f->ra_off), (size_t)n);
            return SQLITE_OK;
        }
    }
    if (f->wal) count(&walbuf_counts.wal_reads);
    return f->real->pMethods->xRead(f->real, p, n, off);
}

static int wb_write(sqlite3_file *pf, const void *p, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)pf;
    f->ra_len = 0;
    if (!f->wal) __atomic_add_fetch(&walbuf_counts.db_pages, 1, __ATOMIC_RELAXED);
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
    f->ra_len = 0;
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

/* The rest pass through, writing the buffer first wherever another connection could
 * look at the file next (locks, the WAL index) or SQLite could (file controls). */
static int wb_lock(sqlite3_file *pf, int l)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xLock(f->real, l);
}

static int wb_unlock(sqlite3_file *pf, int l)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xUnlock(f->real, l);
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

/* Shared memory and memory mapping belong to the database file (version 2 and 3
 * methods). */
static int wb_shm_map(sqlite3_file *pf, int pg, int pgsz, int extend, void volatile **pp)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int wb_shm_lock(sqlite3_file *pf, int offset, int n, int flags)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *pf)
{
    walbuf_file *f = (walbuf_file *)pf;
    /* no way to report a failure here: the bytes stay for the next call to write them
     * (or fail it) */
    if (f->len && flush(f) != SQLITE_OK) tg_log_warn("store", "sqlite: a gathered write failed");
    f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *pf, int del)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *pf, sqlite3_int64 off, int n, void **pp)
{
    walbuf_file *f = (walbuf_file *)pf;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, n, pp);
}

static int wb_unfetch(sqlite3_file *pf, sqlite3_int64 off, void *p)
{
    walbuf_file *f = (walbuf_file *)pf;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

#define WALBUF_IO_V1                                                                     \
    .xClose = wb_close, .xRead = wb_read, .xWrite = wb_write, .xTruncate = wb_truncate,  \
    .xSync = wb_sync, .xFileSize = wb_file_size, .xLock = wb_lock, .xUnlock = wb_unlock, \
    .xCheckReservedLock = wb_check_reserved, .xFileControl = wb_file_control,            \
    .xSectorSize = wb_sector_size, .xDeviceCharacteristics = wb_device_characteristics

/* A WAL file has no shared memory and SQLite does not memory-map it: version 1. A
 * database file gets the version its real file has (the unix VFS: 3). */
static const sqlite3_io_methods walbuf_v1_io = {.iVersion = 1, WALBUF_IO_V1};
static const sqlite3_io_methods walbuf_v2_io = {
    .iVersion = 2, WALBUF_IO_V1, .xShmMap = wb_shm_map, .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier, .xShmUnmap = wb_shm_unmap};
static const sqlite3_io_methods walbuf_v3_io = {
    .iVersion = 3, WALBUF_IO_V1, .xShmMap = wb_shm_map, .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier, .xShmUnmap = wb_shm_unmap, .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch};

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *pf, int flags,
                   int *out_flags)
{
    (void)vfs;
    int wal = (flags & SQLITE_OPEN_WAL) != 0;
    /* Journals and temporary files are the real VFS's own, in the space SQLite gave us. */
    if (!wal && !(flags & SQLITE_OPEN_MAIN_DB))
        return walbuf_real->xOpen(walbuf_real, name, pf, flags, out_flags);
    walbuf_file *f = (walbuf_file *)pf;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    f->wal = wal;
    int rc = walbuf_real->xOpen(walbuf_real, name, f->real, flags, out_flags);
    /* pMethods stays NULL on failure: SQLite then does not call xClose */
    if (rc != SQLITE_OK) return rc;
    int v = wal ? 1 : f->real->pMethods->iVersion;
    f->base.pMethods = v >= 3 ? &walbuf_v3_io : v == 2 ? &walbuf_v2_io : &walbuf_v1_io;
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
