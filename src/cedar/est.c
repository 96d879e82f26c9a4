/*
 * est.c — dumps parsed policies as Cedar's JSON policy format (the "EST" that
 * cedar-wasm's policyToJson returns), so the AST can be compared with the reference.
 *
 * How it fits: `cedar est FILE` prints this, and the differential tests compare it with
 * cedar-wasm. Shape (Cedar's est.rs / expr.rs): {"effect","principal":{"op":..},
 * "action","resource","conditions":[{"kind":"when","body":EXPR}],"annotations":{..}}
 * where annotations are sorted by key and omitted when empty; record literal keys are
 * sorted; `like` patterns list one element per character ("Wildcard" or
 * {"Literal":"c"}); extension calls and extension methods are {"name":[args...]} with
 * the receiver first; `has a.b` keeps its path ("attr":["a","b"], a plain string for one
 * attribute); `action in [A]` with one element is `"entity"`, as for `action in A`; `@key`
 * without a value is null.
 */
#include "cedar/cedar_int.h"

#include <stdlib.h>
#include <string.h>

static void est_str(tg_buf *o, cstr s)
{
    tg_buf_json_string(o, s.p, s.n);
}

static void est_uid(tg_buf *o, const cedar_uid *u)
{
    tg_buf_appends(o, "{\"type\":");
    est_str(o, u->type);
    tg_buf_appends(o, ",\"id\":");
    est_str(o, u->id);
    tg_buf_appends(o, "}");
}

static void est_expr(tg_buf *o, const cedar_node *n);

static void est_bin(tg_buf *o, const char *op, const cedar_node *l, const cedar_node *r)
{
    tg_buf_printf(o, "{\"%s\":{\"left\":", op);
    est_expr(o, l);
    tg_buf_appends(o, ",\"right\":");
    est_expr(o, r);
    tg_buf_appends(o, "}}");
}

static void est_unary(tg_buf *o, const char *op, const cedar_node *a)
{
    tg_buf_printf(o, "{\"%s\":{\"arg\":", op);
    est_expr(o, a);
    tg_buf_appends(o, "}}");
}

/* Length of the UTF-8 sequence starting with byte c (input is valid UTF-8). */
static uint32_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
}

static void est_pattern(tg_buf *o, const like_pat *p)
{
    bool first = true;
    tg_buf_appends(o, "[");
    for (uint32_t i = 0; i < p->nchunks; i++) {
        if (i) {
            tg_buf_appends(o, first ? "\"Wildcard\"" : ",\"Wildcard\"");
            first = false;
        }
        cstr c = p->chunks[i];
        for (uint32_t k = 0; k < c.n;) {
            uint32_t len = utf8_len((unsigned char)c.p[k]);
            if (len > c.n - k) len = c.n - k;
            tg_buf_appends(o, first ? "{\"Literal\":" : ",{\"Literal\":");
            first = false;
            est_str(o, (cstr){c.p + k, len});
            tg_buf_appends(o, "}");
            k += len;
        }
    }
    tg_buf_appends(o, "]");
}

static void est_value(tg_buf *o, const cedar_value *v)
{
    switch (v->kind) {
    case CV_BOOL: tg_buf_appends(o, v->u.b ? "true" : "false"); break;
    case CV_LONG: tg_buf_printf(o, "%lld", (long long)v->u.l); break;
    case CV_STRING: est_str(o, v->u.s); break;
    case CV_ENTITY:
        tg_buf_appends(o, "{\"__entity\":");
        est_uid(o, v->u.uid);
        tg_buf_appends(o, "}");
        break;
    default: tg_buf_appends(o, "null"); break;  /* the parser makes no other literals */
    }
}

static int cmp_key_index(const void *a, const void *b, void *keys)
{
    const cstr *k = keys;
    return cstr_cmp(k[*(const uint32_t *)a], k[*(const uint32_t *)b]);
}

static void est_expr(tg_buf *o, const cedar_node *n)
{
    static const char *const vars[] = {"principal", "action", "resource", "context"};
    switch (n->kind) {
    case N_VALUE:
        tg_buf_appends(o, "{\"Value\":");
        est_value(o, &n->val);
        tg_buf_appends(o, "}");
        return;
    case N_VAR: tg_buf_printf(o, "{\"Var\":\"%s\"}", vars[n->var]); return;
    case N_SLOT: tg_buf_printf(o, "{\"Slot\":\"?%s\"}", vars[n->var]); return;
    case N_NOT: est_unary(o, "!", n->a); return;
    case N_NEG: est_unary(o, "neg", n->a); return;
    case N_AND: est_bin(o, "&&", n->a, n->b); return;
    case N_OR: est_bin(o, "||", n->a, n->b); return;
    case N_EQ: est_bin(o, "==", n->a, n->b); return;
    case N_NE: est_bin(o, "!=", n->a, n->b); return;
    case N_LT: est_bin(o, "<", n->a, n->b); return;
    case N_LE: est_bin(o, "<=", n->a, n->b); return;
    case N_GT: est_bin(o, ">", n->a, n->b); return;
    case N_GE: est_bin(o, ">=", n->a, n->b); return;
    case N_IN: est_bin(o, "in", n->a, n->b); return;
    case N_ADD: est_bin(o, "+", n->a, n->b); return;
    case N_SUB: est_bin(o, "-", n->a, n->b); return;
    case N_MUL: est_bin(o, "*", n->a, n->b); return;
    case N_IF:
        tg_buf_appends(o, "{\"if-then-else\":{\"if\":");
        est_expr(o, n->a);
        tg_buf_appends(o, ",\"then\":");
        est_expr(o, n->b);
        tg_buf_appends(o, ",\"else\":");
        est_expr(o, n->c);
        tg_buf_appends(o, "}}");
        return;
    case N_HAS:
        tg_buf_appends(o, "{\"has\":{\"left\":");
        est_expr(o, n->a);
        tg_buf_appends(o, n->npath > 1 ? ",\"attr\":[" : ",\"attr\":");
        for (uint32_t i = 0; i < n->npath; i++) {
            if (i) tg_buf_appends(o, ",");
            est_str(o, n->keys[i]);
        }
        tg_buf_appends(o, n->npath > 1 ? "]}}" : "}}");
        return;
    case N_GETATTR:
        tg_buf_appends(o, "{\".\":{\"left\":");
        est_expr(o, n->a);
        tg_buf_appends(o, ",\"attr\":");
        est_str(o, n->str);
        tg_buf_appends(o, "}}");
        return;
    case N_LIKE:
        tg_buf_appends(o, "{\"like\":{\"left\":");
        est_expr(o, n->a);
        tg_buf_appends(o, ",\"pattern\":");
        est_pattern(o, &n->pat);
        tg_buf_appends(o, "}}");
        return;
    case N_IS:
        tg_buf_appends(o, "{\"is\":{\"left\":");
        est_expr(o, n->a);
        tg_buf_appends(o, ",\"entity_type\":");
        est_str(o, n->str);
        if (n->b) {
            tg_buf_appends(o, ",\"in\":");
            est_expr(o, n->b);
        }
        tg_buf_appends(o, "}}");
        return;
    case N_SET:
        tg_buf_appends(o, "{\"Set\":[");
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (i) tg_buf_appends(o, ",");
            est_expr(o, n->args[i]);
        }
        tg_buf_appends(o, "]}");
        return;
    case N_RECORD: {
        uint32_t *order = malloc((n->nargs ? n->nargs : 1) * sizeof *order);
        if (!order) abort();
        for (uint32_t i = 0; i < n->nargs; i++) order[i] = i;
        qsort_r(order, n->nargs, sizeof *order, cmp_key_index, n->keys);
        tg_buf_appends(o, "{\"Record\":{");
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (i) tg_buf_appends(o, ",");
            est_str(o, n->keys[order[i]]);
            tg_buf_appends(o, ":");
            est_expr(o, n->args[order[i]]);
        }
        tg_buf_appends(o, "}}");
        free(order);
        return;
    }
    case N_METHOD:
        if (n->fn < FN_FIRST_EXT) {
            if (n->fn == FN_IS_EMPTY) est_unary(o, "isEmpty", n->args[0]);
            else est_bin(o, cedar_fns[n->fn].name, n->args[0], n->args[1]);
            return;
        }
        /* extension methods are calls with the receiver first */
        __attribute__((fallthrough));
    case N_CALL:
        tg_buf_printf(o, "{\"%s\":[", cedar_fns[n->fn].name);
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (i) tg_buf_appends(o, ",");
            est_expr(o, n->args[i]);
        }
        tg_buf_appends(o, "]}");
        return;
    }
}

static void est_scope(tg_buf *o, const scope *sc, const char *slot)
{
    switch (sc->op) {
    case SC_ANY: tg_buf_appends(o, "{\"op\":\"All\""); break;
    case SC_EQ:
    case SC_IN: tg_buf_printf(o, "{\"op\":\"%s\",", sc->op == SC_EQ ? "==" : "in"); break;
    case SC_IS:
    case SC_IS_IN:
        tg_buf_appends(o, "{\"op\":\"is\",\"entity_type\":");
        est_str(o, sc->type);
        tg_buf_appends(o, sc->op == SC_IS_IN ? ",\"in\":{" : "");
        break;
    case SC_IN_SET:
        if (sc->nuids == 1) {
            tg_buf_appends(o, "{\"op\":\"in\",\"entity\":");
            est_uid(o, sc->uids[0]);
            tg_buf_appends(o, "}");
            return;
        }
        tg_buf_appends(o, "{\"op\":\"in\",\"entities\":[");
        for (uint32_t i = 0; i < sc->nuids; i++) {
            if (i) tg_buf_appends(o, ",");
            est_uid(o, sc->uids[i]);
        }
        tg_buf_appends(o, "]}");
        return;
    }
    if (sc->op != SC_ANY && sc->op != SC_IS) {
        if (sc->slot) {
            tg_buf_printf(o, "\"slot\":\"%s\"", slot);
        } else {
            tg_buf_appends(o, "\"entity\":");
            est_uid(o, sc->uid);
        }
        if (sc->op == SC_IS_IN) tg_buf_appends(o, "}");
    }
    tg_buf_appends(o, "}");
}

void cedar_policy_set_est(const cedar_policy_set *ps, tg_buf *out)
{
    tg_buf_appends(out, "[");
    for (uint32_t i = 0; i < ps->n; i++) {
        const cedar_policy *p = &ps->policies[i];
        if (i) tg_buf_appends(out, ",");
        tg_buf_printf(out, "{\"effect\":\"%s\",\"principal\":", p->effect == CEDAR_PERMIT ? "permit" : "forbid");
        est_scope(out, &p->principal, "?principal");
        tg_buf_appends(out, ",\"action\":");
        est_scope(out, &p->action, "");
        tg_buf_appends(out, ",\"resource\":");
        est_scope(out, &p->resource, "?resource");
        tg_buf_appends(out, ",\"conditions\":[");
        for (uint32_t c = 0; c < p->nconds; c++) {
            tg_buf_printf(out, "%s{\"kind\":\"%s\",\"body\":", c ? "," : "",
                          p->conds[c].when ? "when" : "unless");
            est_expr(out, p->conds[c].body);
            tg_buf_appends(out, "}");
        }
        tg_buf_appends(out, "]");
        if (p->nannos) {
            uint32_t *order = malloc(p->nannos * sizeof *order);
            cstr *keys = malloc(p->nannos * sizeof *keys);
            if (!order || !keys) abort();
            for (uint32_t k = 0; k < p->nannos; k++) {
                order[k] = k;
                keys[k] = p->annos[k].key;
            }
            qsort_r(order, p->nannos, sizeof *order, cmp_key_index, keys);
            tg_buf_appends(out, ",\"annotations\":{");
            for (uint32_t k = 0; k < p->nannos; k++) {
                if (k) tg_buf_appends(out, ",");
                est_str(out, p->annos[order[k]].key);
                tg_buf_appends(out, ":");
                if (p->annos[order[k]].has_value) est_str(out, p->annos[order[k]].value);
                else tg_buf_appends(out, "null");
            }
            tg_buf_appends(out, "}");
            free(order);
            free(keys);
        }
        tg_buf_appends(out, "}");
    }
    tg_buf_appends(out, "]");
}
