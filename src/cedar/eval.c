/*
 * eval.c — the Cedar evaluator: one policy against one request.
 *
 * How it fits: cedar_authorize (authorize.c) calls cedar_eval_policy for each candidate
 * policy; this file walks the AST built by parser.c, reading entities through the
 * request (store + request-scoped overlay, entities.c) and calling the extension
 * functions of ext/cedar_ext.h. Everything it allocates comes from the request's arena.
 *
 * Error semantics follow Cedar exactly: `&&`, `||` and `if` short-circuit; operands of
 * the wrong type are a type error; Long arithmetic is checked; reading an attribute of a
 * missing entity is an error while `has` on it is false; `in` is reflexive and an entity
 * missing from the store simply has no ancestors. An error makes the whole policy error.
 * Recursion is bounded by the parser's CEDAR_MAX_DEPTH check on every condition.
 */
#include "cedar/cedar_int.h"

#include <stdio.h>
#include <string.h>

typedef struct ev_ctx {
    cedar_request *rq;
    const char    *msg;  /* first error, in the request arena */
} ev_ctx;

static int ev_fail(ev_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ev_fail(ev_ctx *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->msg = tg_arena_strdup(c->rq->arena, buf);
    return -1;
}

static int type_error(ev_ctx *c, const char *want, const cedar_value *got)
{
    tg_buf b = TG_BUF_INIT;
    cv_describe(got, &b);
    ev_fail(c, "type error: expected %s, got %s %s", want, cv_kind_name(got->kind), b.data);
    tg_buf_free(&b);
    return -1;
}

/* Reflexive, transitive `a in b` through the precomputed ancestor closures. */
static bool entity_in(const cedar_request *rq, const cedar_uid *a, const cedar_uid *b)
{
    if (cedar_uid_eq(a, b)) return true;
    const cedar_entity *e = cedar_request_entity(rq, a);
    return e && uid_set_has(&e->ancestors, b);
}

static int ev(ev_ctx *c, const cedar_node *n, cedar_value *out);

static int ev_bool(ev_ctx *c, const cedar_node *n, bool *out)
{
    cedar_value v;
    if (ev(c, n, &v)) return -1;
    if (v.kind != CV_BOOL) return type_error(c, "bool", &v);
    *out = v.u.b;
    return 0;
}

static int ev_in(ev_ctx *c, const cedar_value *l, const cedar_value *r, cedar_value *out)
{
    if (l->kind != CV_ENTITY) return type_error(c, "entity", l);
    out->kind = CV_BOOL;
    if (r->kind == CV_ENTITY) {
        out->u.b = entity_in(c->rq, l->u.uid, r->u.uid);
        return 0;
    }
    if (r->kind != CV_SET) return type_error(c, "entity or set of entities", r);
    /* Cedar checks every element's type before answering. */
    for (uint32_t i = 0; i < r->u.set->n; i++)
        if (r->u.set->v[i].kind != CV_ENTITY) return type_error(c, "entity", &r->u.set->v[i]);
    out->u.b = false;
    for (uint32_t i = 0; i < r->u.set->n && !out->u.b; i++)
        out->u.b = entity_in(c->rq, l->u.uid, r->u.set->v[i].u.uid);
    return 0;
}

static int ev_compare(ev_ctx *c, int kind, const cedar_value *l, const cedar_value *r,
                      cedar_value *out)
{
    bool ok = l->kind == r->kind &&
              (l->kind == CV_LONG || l->kind == CV_DATETIME || l->kind == CV_DURATION);
    if (!ok) {
        if (l->kind != CV_LONG && l->kind != CV_DATETIME && l->kind != CV_DURATION)
            return type_error(c, "long, datetime or duration", l);
        return type_error(c, cv_kind_name(l->kind), r);
    }
    int64_t x = l->u.l, y = r->u.l;
    out->kind = CV_BOOL;
    out->u.b = kind == N_LT ? x < y : kind == N_LE ? x <= y : kind == N_GT ? x > y : x >= y;
    return 0;
}

static int ev_arith(ev_ctx *c, int kind, const cedar_value *l, const cedar_value *r,
                    cedar_value *out)
{
    if (l->kind != CV_LONG) return type_error(c, "long", l);
    if (r->kind != CV_LONG) return type_error(c, "long", r);
    int64_t v;
    bool ovf = kind == N_ADD ? __builtin_add_overflow(l->u.l, r->u.l, &v)
             : kind == N_SUB ? __builtin_sub_overflow(l->u.l, r->u.l, &v)
                             : __builtin_mul_overflow(l->u.l, r->u.l, &v);
    if (ovf)
        return ev_fail(c, "integer overflow: %lld %c %lld", (long long)l->u.l,
                       kind == N_ADD ? '+' : kind == N_SUB ? '-' : '*', (long long)r->u.l);
    out->kind = CV_LONG;
    out->u.l = v;
    return 0;
}

/* Attribute access and `has` on records and entities. found==NULL means "read" (missing is
 * an error), otherwise "has" (missing is false). */
static int ev_attr(ev_ctx *c, const cedar_value *obj, cstr attr, cedar_value *out, bool *found)
{
    const cv_record *rec;
    if (obj->kind == CV_RECORD) {
        rec = obj->u.rec;
    } else if (obj->kind == CV_ENTITY) {
        const cedar_entity *e = cedar_request_entity(c->rq, obj->u.uid);
        if (!e) {
            if (found) {
                *found = false;
                return 0;
            }
            tg_buf b = TG_BUF_INIT;
            cv_describe(obj, &b);
            ev_fail(c, "entity %s does not exist", b.data);
            tg_buf_free(&b);
            return -1;
        }
        rec = e->attrs;
    } else {
        return type_error(c, "entity or record", obj);
    }
    const cedar_value *v = rec ? cv_record_get(rec, attr) : NULL;
    if (found) {
        *found = v != NULL;
        return 0;
    }
    if (!v)
        return ev_fail(c, "attribute `%.*s` does not exist", (int)(attr.n > 64 ? 64 : attr.n), attr.p);
    *out = *v;
    return 0;
}

static int ev_tag(ev_ctx *c, int fn, const cedar_value *args, cedar_value *out)
{
    if (args[0].kind != CV_ENTITY) return type_error(c, "entity", &args[0]);
    if (args[1].kind != CV_STRING) return type_error(c, "string", &args[1]);
    const cedar_entity *e = cedar_request_entity(c->rq, args[0].u.uid);
    const cedar_value *v = e && e->tags ? cv_record_get(e->tags, args[1].u.s) : NULL;
    if (fn == FN_HAS_TAG) {
        out->kind = CV_BOOL;
        out->u.b = v != NULL;
        return 0;
    }
    if (!e) {
        tg_buf b = TG_BUF_INIT;
        cv_describe(&args[0], &b);
        ev_fail(c, "entity %s does not exist", b.data);
        tg_buf_free(&b);
        return -1;
    }
    if (!v)
        return ev_fail(c, "tag `%.*s` does not exist", (int)(args[1].u.s.n > 64 ? 64 : args[1].u.s.n),
                       args[1].u.s.p);
    *out = *v;
    return 0;
}

static int ev_set_method(ev_ctx *c, int fn, const cedar_value *args, cedar_value *out)
{
    if (args[0].kind != CV_SET) return type_error(c, "set", &args[0]);
    const cv_set *s = args[0].u.set;
    out->kind = CV_BOOL;
    switch (fn) {
    case FN_CONTAINS:
        out->u.b = cv_set_contains(s, &args[1]);
        return 0;
    case FN_IS_EMPTY:
        out->u.b = s->n == 0;
        return 0;
    default:
        break;
    }
    if (args[1].kind != CV_SET) return type_error(c, "set", &args[1]);
    const cv_set *t = args[1].u.set;
    if (fn == FN_CONTAINS_ALL) {
        out->u.b = true;
        for (uint32_t i = 0; i < t->n && out->u.b; i++) out->u.b = cv_set_contains(s, &t->v[i]);
    } else {
        out->u.b = false;
        for (uint32_t i = 0; i < t->n && !out->u.b; i++) out->u.b = cv_set_contains(s, &t->v[i]);
    }
    return 0;
}

/* Evaluates the nodes args[0..n) into vals. */
static int ev_all(ev_ctx *c, cedar_node *const *args, uint32_t n, cedar_value *vals)
{
    for (uint32_t i = 0; i < n; i++)
        if (ev(c, args[i], &vals[i])) return -1;
    return 0;
}

static int ev(ev_ctx *c, const cedar_node *n, cedar_value *out)
{
    cedar_value l, r;
    bool b;
    switch (n->kind) {
    case N_VALUE:
        *out = n->val;
        return 0;
    case N_VAR:
        if (n->var == VAR_CONTEXT) {
            *out = c->rq->context;
        } else {
            out->kind = CV_ENTITY;
            out->u.uid = n->var == VAR_PRINCIPAL ? c->rq->principal
                       : n->var == VAR_ACTION    ? c->rq->action
                                                 : c->rq->resource;
        }
        return 0;
    case N_SLOT:
        return ev_fail(c, "template slot ?%s is not linked", n->var == VAR_PRINCIPAL ? "principal" : "resource");
    case N_NOT:
        if (ev_bool(c, n->a, &b)) return -1;
        out->kind = CV_BOOL;
        out->u.b = !b;
        return 0;
    case N_NEG:
        if (ev(c, n->a, &l)) return -1;
        if (l.kind != CV_LONG) return type_error(c, "long", &l);
        if (l.u.l == INT64_MIN) return ev_fail(c, "integer overflow: -(%lld)", (long long)l.u.l);
        out->kind = CV_LONG;
        out->u.l = -l.u.l;
        return 0;
    case N_AND:
    case N_OR:
        if (ev_bool(c, n->a, &b)) return -1;
        out->kind = CV_BOOL;
        if (b == (n->kind == N_OR)) {
            out->u.b = b;
            return 0;
        }
        if (ev_bool(c, n->b, &b)) return -1;
        out->u.b = b;
        return 0;
    case N_IF:
        if (ev_bool(c, n->a, &b)) return -1;
        return ev(c, b ? n->b : n->c, out);
    case N_EQ:
    case N_NE:
        if (ev(c, n->a, &l) || ev(c, n->b, &r)) return -1;
        out->kind = CV_BOOL;
        out->u.b = cv_equal(&l, &r) == (n->kind == N_EQ);
        return 0;
    case N_LT:
    case N_LE:
    case N_GT:
    case N_GE:
        if (ev(c, n->a, &l) || ev(c, n->b, &r)) return -1;
        return ev_compare(c, n->kind, &l, &r, out);
    case N_IN:
        if (ev(c, n->a, &l) || ev(c, n->b, &r)) return -1;
        return ev_in(c, &l, &r, out);
    case N_ADD:
    case N_SUB:
    case N_MUL:
        if (ev(c, n->a, &l) || ev(c, n->b, &r)) return -1;
        return ev_arith(c, n->kind, &l, &r, out);
    case N_HAS:
        /* `e has a.b` is `e has a && e.a has b`: stop at the first missing attribute */
        if (ev(c, n->a, &l)) return -1;
        b = true;
        for (uint32_t i = 0; b && i < n->npath; i++) {
            if (ev_attr(c, &l, n->keys[i], NULL, &b)) return -1;
            if (b && i + 1 < n->npath && ev_attr(c, &l, n->keys[i], &l, NULL)) return -1;
        }
        out->kind = CV_BOOL;
        out->u.b = b;
        return 0;
    case N_GETATTR:
        if (ev(c, n->a, &l)) return -1;
        return ev_attr(c, &l, n->str, out, NULL);
    case N_LIKE:
        if (ev(c, n->a, &l)) return -1;
        if (l.kind != CV_STRING) return type_error(c, "string", &l);
        out->kind = CV_BOOL;
        out->u.b = cedar_like_match(&n->pat, l.u.s);
        return 0;
    case N_IS:
        if (ev(c, n->a, &l)) return -1;
        if (l.kind != CV_ENTITY) return type_error(c, "entity", &l);
        out->kind = CV_BOOL;
        out->u.b = cstr_eq(l.u.uid->type, n->str);
        if (!out->u.b || !n->b) return 0;
        if (ev(c, n->b, &r)) return -1;
        return ev_in(c, &l, &r, out);
    case N_SET: {
        cedar_value *vals = tg_arena_alloc(c->rq->arena, (n->nargs ? n->nargs : 1) * sizeof *vals);
        if (ev_all(c, n->args, n->nargs, vals)) return -1;
        out->kind = CV_SET;
        out->u.set = cv_set_make(c->rq->arena, vals, n->nargs);
        return 0;
    }
    case N_RECORD: {
        cedar_value *vals = tg_arena_alloc(c->rq->arena, (n->nargs ? n->nargs : 1) * sizeof *vals);
        if (ev_all(c, n->args, n->nargs, vals)) return -1;
        out->kind = CV_RECORD;
        /* keys are unique: the parser rejects duplicates */
        out->u.rec = cv_record_make(c->rq->arena, n->keys, vals, n->nargs, NULL);
        return 0;
    }
    case N_METHOD:
    case N_CALL: {
        cedar_value vals[8];
        if (n->nargs > 8)
            return ev_fail(c, "`%s` takes %d argument(s), found %u", cedar_fns[n->fn].name,
                           cedar_fns[n->fn].nargs - (n->kind == N_METHOD), n->nargs - (n->kind == N_METHOD));
        if (ev_all(c, n->args, n->nargs, vals)) return -1;
        switch (n->fn) {
        case FN_CONTAINS:
        case FN_CONTAINS_ALL:
        case FN_CONTAINS_ANY:
        case FN_IS_EMPTY:
            return ev_set_method(c, n->fn, vals, out);
        case FN_GET_TAG:
        case FN_HAS_TAG:
            return ev_tag(c, n->fn, vals, out);
        default: {
            tg_error err;
            if (cedar_call_fn(c->rq->arena, n->fn, vals, n->nargs, out, &err))
                return ev_fail(c, "%s", err.msg);
            return 0;
        }
        }
    }
    }
    return ev_fail(c, "internal error: unknown node kind %d", n->kind);
}

/* ---------------------------------------------------------------- extension functions */

static int want(tg_error *err, const char *fn, const char *type, const cedar_value *got)
{
    return tg_error_set(err, "type error: `%s` expects %s, got %s", fn, type, cv_kind_name(got->kind));
}

int cedar_call_fn(tg_arena *a, int fn, const cedar_value *args, uint32_t nargs, cedar_value *out,
                  tg_error *err)
{
    const fn_info *fi = &cedar_fns[fn];
    if ((int)nargs != fi->nargs)
        return tg_error_set(err, "`%s` takes %d argument(s), found %u", fi->name,
                            fi->nargs - fi->method, nargs - fi->method);
    const cedar_value *x = &args[0], *y = nargs > 1 ? &args[1] : NULL;
    switch (fn) {
    case FN_IP: {
        if (x->kind != CV_STRING) return want(err, fi->name, "a string", x);
        cedar_ipaddr *ip = tg_arena_alloc(a, sizeof *ip);
        if (cedar_ip_parse(x->u.s.p, x->u.s.n, ip))
            return tg_error_set(err, "invalid ip address literal");
        out->kind = CV_IP;
        out->u.ip = ip;
        return 0;
    }
    case FN_DECIMAL:
    case FN_DATETIME:
    case FN_DURATION: {
        if (x->kind != CV_STRING) return want(err, fi->name, "a string", x);
        int rc = fn == FN_DECIMAL    ? cedar_decimal_parse(x->u.s.p, x->u.s.n, &out->u.l)
               : fn == FN_DATETIME   ? cedar_datetime_parse(x->u.s.p, x->u.s.n, &out->u.l)
                                     : cedar_duration_parse(x->u.s.p, x->u.s.n, &out->u.l);
        if (rc) return tg_error_set(err, "invalid %s literal", fi->name);
        out->kind = fn == FN_DECIMAL ? CV_DECIMAL : fn == FN_DATETIME ? CV_DATETIME : CV_DURATION;
        return 0;
    }
    case FN_LESS_THAN:
    case FN_LESS_THAN_OR_EQUAL:
    case FN_GREATER_THAN:
    case FN_GREATER_THAN_OR_EQUAL:
        if (x->kind != CV_DECIMAL) return want(err, fi->name, "a decimal", x);
        if (y->kind != CV_DECIMAL) return want(err, fi->name, "a decimal", y);
        out->kind = CV_BOOL;
        out->u.b = fn == FN_LESS_THAN ? x->u.l < y->u.l
                 : fn == FN_LESS_THAN_OR_EQUAL ? x->u.l <= y->u.l
                 : fn == FN_GREATER_THAN ? x->u.l > y->u.l : x->u.l >= y->u.l;
        return 0;
    case FN_IS_IPV4:
    case FN_IS_IPV6:
    case FN_IS_LOOPBACK:
    case FN_IS_MULTICAST:
    case FN_IS_IN_RANGE:
        if (x->kind != CV_IP) return want(err, fi->name, "an ipaddr", x);
        if (y && y->kind != CV_IP) return want(err, fi->name, "an ipaddr", y);
        out->kind = CV_BOOL;
        out->u.b = fn == FN_IS_IPV4 ? cedar_ip_is_v4(x->u.ip)
                 : fn == FN_IS_IPV6 ? cedar_ip_is_v6(x->u.ip)
                 : fn == FN_IS_LOOPBACK ? cedar_ip_is_loopback(x->u.ip)
                 : fn == FN_IS_MULTICAST ? cedar_ip_is_multicast(x->u.ip)
                                         : cedar_ip_in_range(x->u.ip, y->u.ip);
        return 0;
    case FN_OFFSET:
    case FN_DURATION_SINCE:
        if (x->kind != CV_DATETIME) return want(err, fi->name, "a datetime", x);
        if (fn == FN_OFFSET) {
            if (y->kind != CV_DURATION) return want(err, fi->name, "a duration", y);
            if (cedar_datetime_offset(x->u.l, y->u.l, &out->u.l))
                return tg_error_set(err, "overflow in datetime offset");
            out->kind = CV_DATETIME;
        } else {
            if (y->kind != CV_DATETIME) return want(err, fi->name, "a datetime", y);
            if (cedar_datetime_duration_since(x->u.l, y->u.l, &out->u.l))
                return tg_error_set(err, "overflow in durationSince");
            out->kind = CV_DURATION;
        }
        return 0;
    case FN_TO_DATE:
    case FN_TO_TIME:
        if (x->kind != CV_DATETIME) return want(err, fi->name, "a datetime", x);
        if (fn == FN_TO_DATE) {
            if (cedar_datetime_to_date(x->u.l, &out->u.l))
                return tg_error_set(err, "overflow in toDate");
            out->kind = CV_DATETIME;
        } else {
            out->u.l = cedar_datetime_to_time(x->u.l);
            out->kind = CV_DURATION;
        }
        return 0;
    case FN_TO_DAYS:
    case FN_TO_HOURS:
    case FN_TO_MINUTES:
    case FN_TO_SECONDS:
    case FN_TO_MILLISECONDS:
        if (x->kind != CV_DURATION) return want(err, fi->name, "a duration", x);
        out->kind = CV_LONG;
        out->u.l = fn == FN_TO_DAYS ? cedar_duration_to_days(x->u.l)
                 : fn == FN_TO_HOURS ? cedar_duration_to_hours(x->u.l)
                 : fn == FN_TO_MINUTES ? cedar_duration_to_minutes(x->u.l)
                 : fn == FN_TO_SECONDS ? cedar_duration_to_seconds(x->u.l)
                                       : cedar_duration_to_milliseconds(x->u.l);
        return 0;
    default:
        return tg_error_set(err, "`%s` cannot be called here", fi->name);
    }
}

/* ---------------------------------------------------------------- policies */

static bool scope_match(const cedar_request *rq, const scope *sc, const cedar_uid *u)
{
    switch (sc->op) {
    case SC_ANY: return true;
    case SC_EQ: return cedar_uid_eq(u, sc->uid);
    case SC_IN: return entity_in(rq, u, sc->uid);
    case SC_IS: return cstr_eq(u->type, sc->type);
    case SC_IS_IN: return cstr_eq(u->type, sc->type) && entity_in(rq, u, sc->uid);
    case SC_IN_SET:
        for (uint32_t i = 0; i < sc->nuids; i++)
            if (entity_in(rq, u, sc->uids[i])) return true;
        return false;
    }
    return false;
}

int cedar_eval_policy(const cedar_policy *p, cedar_request *rq, const char **msg)
{
    /* A template (scope with a slot) is not a policy until linked: it never applies. */
    if (p->principal.slot || p->resource.slot) return 0;
    if (!scope_match(rq, &p->principal, rq->principal) || !scope_match(rq, &p->action, rq->action) ||
        !scope_match(rq, &p->resource, rq->resource))
        return 0;
    ev_ctx c = {.rq = rq};
    for (uint32_t i = 0; i < p->nconds; i++) {
        bool b = false; /* ev_bool sets it unless it fails */
        if (ev_bool(&c, p->conds[i].body, &b)) {
            *msg = c.msg;
            return -1;
        }
        if (b != p->conds[i].when) return 0;
    }
    return 1;
}
