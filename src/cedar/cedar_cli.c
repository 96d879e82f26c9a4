/*
 * cedar_cli.c — `toolgate cedar ...`: check, authorize, corpus and est subcommands.
 *
 * How it fits: a thin layer over cedar.h that reads files and prints results; the
 * toolgate main dispatches `toolgate cedar` here, and the corpus test runs
 * `cedar corpus DIR` through a test binary. Nothing here is used while serving.
 */
#include "cedar/cedar_cli.h"
#include "cedar/cedar_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a whole file; returns NULL and fills err when it cannot. Caller frees. */
static char *read_file(const char *path, size_t *len, tg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        tg_error_set(err, "%s: cannot open: %m", path);
        return NULL;
    }
    tg_buf b = TG_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) tg_buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        tg_buf_free(&b);
        tg_error_set(err, "%s: read error", path);
        return NULL;
    }
    tg_buf_append(&b, "", 0);
    *len = b.len;
    return tg_buf_steal(&b);
}

static cedar_policy_set *load_policies(const char *path, tg_error *err)
{
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return NULL;
    tg_error perr;
    cedar_policy_set *ps = cedar_policy_set_parse(text, len, &perr);
    free(text);
    if (!ps) tg_error_set(err, "%s:%s", path, perr.msg);
    return ps;
}

/* Reads and parses a JSON file into arena a (Cedar's JSON reader: NUL allowed in keys). */
static const cj *load_json(tg_arena *a, const char *path, tg_error *err)
{
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return NULL;
    tg_error jerr;
    const cj *j = cj_parse(a, text, len, &jerr);
    free(text);
    if (!j) tg_error_set(err, "%s: %.900s", path, jerr.msg);
    return j;
}

static cedar_store *load_store(const char *path, tg_error *err)
{
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return NULL;
    tg_error serr;
    cedar_store *st = cedar_store_load(text, len, &serr);
    free(text);
    if (!st) tg_error_set(err, "%s: %.900s", path, serr.msg);
    return st;
}

static int cmd_check(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: cedar check FILE...\n");
        return 2;
    }
    int rc = 0;
    for (int i = 0; i < argc; i++) {
        tg_error err;
        cedar_policy_set *ps = load_policies(argv[i], &err);
        if (!ps) {
            fprintf(stderr, "%s\n", err.msg);
            rc = 1;
            continue;
        }
        printf("%s: %zu policies ok\n", argv[i], cedar_policy_count(ps));
        cedar_policy_set_free(ps);
    }
    return rc;
}

static void print_ids(tg_buf *out, const cedar_policy_set *ps, const size_t *ids, size_t n)
{
    tg_buf_appends(out, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) tg_buf_appends(out, ",");
        const char *id = cedar_policy_id(ps, ids[i]);
        tg_buf_json_string(out, id, strlen(id));
    }
    tg_buf_appends(out, "]");
}

static int cmd_authorize(int argc, char **argv)
{
    const char *pol = NULL, *ent = NULL, *req = NULL;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--policies")) pol = argv[i + 1];
        else if (!strcmp(argv[i], "--entities")) ent = argv[i + 1];
        else if (!strcmp(argv[i], "--request")) req = argv[i + 1];
        else break;
    }
    if (!pol || !req || argc % 2) {
        fprintf(stderr, "usage: cedar authorize --policies P [--entities E] --request R.json\n");
        return 2;
    }
    tg_error err;
    int rc = 1;
    cedar_store *st = NULL;
    const cj *rj = NULL;
    tg_arena *arena = tg_arena_new(0);
    cedar_policy_set *ps = load_policies(pol, &err);
    if (!ps || (ent && !(st = load_store(ent, &err))) || !(rj = load_json(arena, req, &err))) {
        fprintf(stderr, "cedar authorize: %s\n", err.msg);
        goto out;
    }
    cedar_request *rq = cedar_request_new(arena, st);
    cedar_response res;
    if (cedar_request_from_cj(rq, rj, &err) || cedar_authorize(ps, rq, &res, &err)) {
        fprintf(stderr, "cedar authorize: %s: %s\n", req, err.msg);
        goto out;
    }
    tg_buf out = TG_BUF_INIT;
    tg_buf_printf(&out, "{\"decision\":\"%s\",\"reasons\":", res.decision == CEDAR_ALLOW ? "allow" : "deny");
    print_ids(&out, ps, res.reasons, res.nreasons);
    tg_buf_appends(&out, ",\"errors\":");
    print_ids(&out, ps, res.errors, res.nerrors);
    tg_buf_appends(&out, "}\n");
    fputs(out.data, stdout);
    tg_buf_free(&out);
    for (size_t i = 0; i < res.nerrors; i++)
        fprintf(stderr, "%s: %s\n", cedar_policy_id(ps, res.errors[i]), res.error_msgs[i]);
    rc = 0;
out:
    tg_arena_free(arena);
    cedar_store_free(st);
    cedar_policy_set_free(ps);
    return rc;
}

/* ---------------------------------------------------------------- corpus */

/* Compares a JSON array of policy ids with the response's ids as sets (positional ids:
 * the corpus names policies policyN). */
static int ids_match(const cj *want, const size_t *ids, size_t n)
{
    if (!want || want->kind != CJ_ARR || want->n != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "policy%zu", ids[i]);
        cstr k = {id, (uint32_t)strlen(id)};
        int found = 0;
        for (size_t j = 0; j < n && !found; j++)
            found = want->items[j]->kind == CJ_STR && cstr_eq(want->items[j]->s, k);
        if (!found) return 0;
    }
    return 1;
}

static void ids_text(tg_buf *b, const size_t *ids, size_t n)
{
    tg_buf_appends(b, "[");
    for (size_t i = 0; i < n; i++) tg_buf_printf(b, "%s\"policy%zu\"", i ? "," : "", ids[i]);
    tg_buf_appends(b, "]");
}

static const char *cj_text(const cj *j)
{
    return j && j->kind == CJ_STR ? j->s.p : NULL;  /* arena strings are NUL-terminated */
}

/* Runs one case file; adds to *pass / *fail per request and prints each mismatch. */
static void corpus_case(const char *dir, const char *name, long *pass, long *fail)
{
    char path[4096];
    tg_error err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tg_arena *ca = tg_arena_new(0), *ra = tg_arena_new(0);
    const cj *c = load_json(ca, path, &err);
    const cj *reqs = cj_get(c, "requests");
    if (!reqs || reqs->kind != CJ_ARR) {
        printf("FAIL %s: %s\n", name, c ? "no \"requests\" array" : err.msg);
        (*fail)++;
        goto done;
    }
    /* Paths in the case are relative to the corpus root ("corpus-tests/H.cedar"); the
     * files sit next to the case, so their base names are looked up in dir. */
    cedar_policy_set *ps = NULL;
    cedar_store *st = NULL;
    const char *setup_err = NULL;
    const char *keys[2] = {"policies", "entities"};
    for (int k = 0; k < 2 && !setup_err; k++) {
        const char *rel = cj_text(cj_get(c, keys[k]));
        if (!rel) {
            setup_err = k ? "no \"entities\" path" : "no \"policies\" path";
            break;
        }
        const char *base = strrchr(rel, '/');
        snprintf(path, sizeof path, "%s/%s", dir, base ? base + 1 : rel);
        if (k == 0 && !(ps = load_policies(path, &err))) setup_err = err.msg;
        if (k == 1 && !(st = load_store(path, &err))) setup_err = err.msg;
    }
    for (size_t i = 0; i < reqs->n; i++) {
        const cj *r = reqs->items[i];
        const char *desc = cj_text(cj_get(r, "description"));
        tg_buf why = TG_BUF_INIT;
        if (setup_err) {
            tg_buf_printf(&why, "%s", setup_err);
        } else {
            tg_arena_reset(ra);
            cedar_request *rq = cedar_request_new(ra, st);
            cedar_response res;
            if (cedar_request_from_cj(rq, r, &err) || cedar_authorize(ps, rq, &res, &err)) {
                tg_buf_printf(&why, "request: %s", err.msg);
            } else {
                const char *want = cj_text(cj_get(r, "decision"));
                const char *got = res.decision == CEDAR_ALLOW ? "allow" : "deny";
                if (!want || strcmp(want, got) || !ids_match(cj_get(r, "reason"), res.reasons, res.nreasons) ||
                    !ids_match(cj_get(r, "errors"), res.errors, res.nerrors)) {
                    tg_buf_printf(&why, "got %s reasons ", got);
                    ids_text(&why, res.reasons, res.nreasons);
                    tg_buf_appends(&why, " errors ");
                    ids_text(&why, res.errors, res.nerrors);
                    for (size_t e = 0; e < res.nerrors; e++)
                        tg_buf_printf(&why, " (policy%zu: %s)", res.errors[e], res.error_msgs[e]);
                    tg_buf_printf(&why, "; expected %s", want ? want : "?");
                    const char *lists[2] = {"reason", "errors"};
                    for (int l = 0; l < 2; l++) {
                        const cj *ids = cj_get(r, lists[l]);
                        tg_buf_printf(&why, " %s [", lists[l]);
                        for (uint32_t e = 0; ids && ids->kind == CJ_ARR && e < ids->n; e++)
                            tg_buf_printf(&why, "%s%s", e ? "," : "", cj_text(ids->items[e]) ? cj_text(ids->items[e]) : "?");
                        tg_buf_appends(&why, "]");
                    }
                }
            }
        }
        if (why.len) {
            printf("FAIL %s [%s]: %s\n", name, desc ? desc : "?", why.data);
            (*fail)++;
        } else {
            (*pass)++;
        }
        tg_buf_free(&why);
    }
    cedar_store_free(st);
    cedar_policy_set_free(ps);
done:
    tg_arena_free(ra);
    tg_arena_free(ca);
}

static int is_case_file(const char *n)
{
    size_t len = strlen(n);
    return len > 5 && !strcmp(n + len - 5, ".json") &&
           !(len > 14 && !strcmp(n + len - 14, ".entities.json"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_corpus(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: cedar corpus DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[0]);
    if (!d) {
        fprintf(stderr, "cedar corpus: %s: cannot open directory: %m\n", argv[0]);
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_case_file(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
            if (!names) abort();
        }
        names[n] = strdup(de->d_name);
        if (!names[n++]) abort();
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);  /* stable output order */
    long pass = 0, fail = 0;
    for (size_t i = 0; i < n; i++) {
        corpus_case(argv[0], names[i], &pass, &fail);
        free(names[i]);
    }
    free(names);
    if (!n) {
        fprintf(stderr, "cedar corpus: no *.json cases in %s\n", argv[0]);
        fail++;
    }
    printf("%ld passed, %ld failed\n", pass, fail);
    return fail ? 1 : 0;
}

static int cmd_est(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: cedar est FILE\n");
        return 2;
    }
    tg_error err;
    cedar_policy_set *ps = load_policies(argv[0], &err);
    if (!ps) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tg_buf out = TG_BUF_INIT;
    cedar_policy_set_est(ps, &out);
    tg_buf_appends(&out, "\n");
    fwrite(out.data, 1, out.len, stdout);
    tg_buf_free(&out);
    cedar_policy_set_free(ps);
    return 0;
}

int cedar_cli_main(int argc, char **argv)
{
    const char *usage =
        "usage: cedar check FILE...\n"
        "       cedar authorize --policies P [--entities E] --request R.json\n"
        "       cedar corpus DIR\n"
        "       cedar est FILE\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "authorize")) return cmd_authorize(argc - 2, argv + 2);
    if (!strcmp(cmd, "corpus")) return cmd_corpus(argc - 2, argv + 2);
    if (!strcmp(cmd, "est")) return cmd_est(argc - 2, argv + 2);
    fprintf(stderr, "cedar: unknown command `%s`\n%s", cmd, usage);
    return 2;
}
