/*
 * The common Binance frames, read in C: the in-process pipeline's fast lane.
 *
 * scan(payload, exchange, ts_recv) reads a combined-stream frame of a
 * `<symbol>@trade`, `<symbol>@bookTicker` or `<symbol>@depth[@100ms]` stream
 * and returns
 *   - a Trade or a BestBidAsk event, or
 *   - (DepthUpdate with empty level tuples, bids, asks) where bids and asks are
 *     bytes of packed native doubles (price, qty, price, qty, ...), which
 *     `Side.update_packed` applies to the compiled book without creating a
 *     Python object per level;
 * or None for every other frame. None is not a verdict: the caller then
 * parses the frame with the reference parser (microstream.venues.binance.parse),
 * which accepts, ignores or rejects it and counts why. So this reader only
 * has to be exact on what it accepts, and it accepts only the plain layout
 * Binance sends: compact JSON, decimal strings without exponent, integer ids,
 * no escapes, no repeated keys. Anything else (a futures trade that is not a
 * MARKET fill, an invalid price, u < U, an unknown stream) returns None.
 *
 * Decimal strings are converted exactly as a correctly rounded parser does:
 * the digits form an integer m <= 2^53 and the value is m / 10^k with
 * k <= 22, a single correctly rounded division of two exact doubles
 * (Clinger's fast path). Longer numbers return None.
 *
 * configure(trade_type, depth_type, ticker_type, buy, sell) must be called once with the
 * event classes and the side strings (microstream.venues.binance.fastlane does).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MS 1000000LL
#define MAX_MS 9000000000000LL /* ms times above this would overflow int64 ns */

static PyObject *TradeType = NULL;
static PyObject *DepthType = NULL;
static PyObject *TickerType = NULL;
static PyObject *BuyStr = NULL;
static PyObject *SellStr = NULL;
static PyObject *EmptyTuple = NULL;

/* The last symbol string made, reused while frames keep naming it. */
static char cached_symbol[32];
static Py_ssize_t cached_symbol_len = -1;
static PyObject *cached_symbol_obj = NULL;

static const double POW10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

typedef struct {
    const char *p;
    const char *end;
} Cursor;

static inline void
skip_ws(Cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static inline int
expect(Cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A string without escapes: its bytes in [*s, *s + *n). */
static int
read_string(Cursor *c, const char **s, Py_ssize_t *n)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return 0;
    const char *start = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20)
            return 0;
        c->p++;
    }
    if (c->p >= c->end)
        return 0;
    *s = start;
    *n = c->p - start;
    c->p++;
    return 1;
}

/* A non-negative JSON integer of at most 18 digits. */
static int
read_int(Cursor *c, int64_t *out)
{
    skip_ws(c);
    const char *q = c->p;
    int64_t v = 0;
    int digits = 0;
    while (q < c->end && *q >= '0' && *q <= '9') {
        v = v * 10 + (*q - '0');
        q++;
        if (++digits > 18)
            return 0;
    }
    if (digits == 0 || (digits > 1 && c->p[0] == '0'))
        return 0;
    if (q < c->end && (*q == '.' || *q == 'e' || *q == 'E'))
        return 0;
    *out = v;
    c->p = q;
    return 1;
}

/* Digits with an optional fraction, in [s, s + n), exactly rounded; 0 if not that shape. */
static int
decimal_value(const char *s, Py_ssize_t n, double *out)
{
    uint64_t m = 0;
    int digits = 0, frac = -1;
    if (n > 1 && s[0] == '0' && s[1] != '.')
        return 0; /* a leading zero: not a plain decimal */
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= '0' && ch <= '9') {
            if (m > (1ULL << 53) / 10 + 1)
                return 0;
            m = m * 10 + (uint64_t)(ch - '0');
            digits++;
            if (frac >= 0)
                frac++;
        } else if (ch == '.' && frac < 0 && digits > 0) {
            frac = 0;
        } else {
            return 0;
        }
    }
    if (digits == 0 || frac == 0 || m > (1ULL << 53))
        return 0;
    if (frac < 0)
        frac = 0;
    if (frac > 22)
        return 0;
    *out = (double)m / POW10[frac];
    return 1;
}

/* A decimal as a JSON string ("61737.63000000") or a bare number. */
static int
read_decimal(Cursor *c, double *out)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == '"') {
        const char *s;
        Py_ssize_t n;
        if (!read_string(c, &s, &n))
            return 0;
        return decimal_value(s, n, out);
    }
    const char *start = c->p;
    while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '.'))
        c->p++;
    return decimal_value(start, c->p - start, out);
}

static int
read_bool(Cursor *c, int *out)
{
    skip_ws(c);
    if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
        c->p += 4;
        *out = 1;
        return 1;
    }
    if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
        c->p += 5;
        *out = 0;
        return 1;
    }
    return 0;
}

static int
skip_digits(Cursor *c)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start;
}

/* Skip a scalar value (string, number, true, false, null), strictly; nested values are not
 * expected in these frames. */
static int
skip_scalar(Cursor *c)
{
    skip_ws(c);
    if (c->p >= c->end)
        return 0;
    char ch = *c->p;
    if (ch == '"') {
        const char *s;
        Py_ssize_t n;
        return read_string(c, &s, &n);
    }
    static const char *const words[3] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[i], n) == 0) {
            c->p += n;
            return 1;
        }
    }
    if (ch == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (!skip_digits(c))
        return 0;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!skip_digits(c))
            return 0;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!skip_digits(c))
            return 0;
    }
    return 1;
}

/* Growable packed (price, qty) doubles. */
typedef struct {
    double *v;
    Py_ssize_t n; /* doubles */
    Py_ssize_t cap;
    double stack[256];
} Packed;

static void
packed_init(Packed *b)
{
    b->v = b->stack;
    b->n = 0;
    b->cap = 256;
}

static void
packed_free(Packed *b)
{
    if (b->v != b->stack)
        PyMem_Free(b->v);
}

static int
packed_push(Packed *b, double price, double qty)
{
    if (b->n + 2 > b->cap) {
        Py_ssize_t cap = b->cap * 2;
        double *v = PyMem_Malloc((size_t)cap * sizeof(double));
        if (v == NULL)
            return 0;
        memcpy(v, b->v, (size_t)b->n * sizeof(double));
        if (b->v != b->stack)
            PyMem_Free(b->v);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = price;
    b->v[b->n++] = qty;
    return 1;
}

/* [["p","q"], ...] with 0 < p < inf and 0 <= q < inf (a diff may remove a level). */
static int
read_levels(Cursor *c, Packed *out)
{
    if (!expect(c, '['))
        return 0;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 1;
    }
    for (;;) {
        double price, qty;
        if (!expect(c, '[') || !read_decimal(c, &price) || !expect(c, ',') ||
            !read_decimal(c, &qty) || !expect(c, ']'))
            return 0;
        if (!(price > 0.0 && price < INFINITY && qty >= 0.0 && qty < INFINITY))
            return 0;
        if (!packed_push(out, price, qty))
            return 0;
        if (expect(c, ','))
            continue;
        return expect(c, ']');
    }
}

static PyObject *
symbol_object(const char *s, Py_ssize_t n)
{
    if (n == cached_symbol_len && memcmp(s, cached_symbol, (size_t)n) == 0) {
        Py_INCREF(cached_symbol_obj);
        return cached_symbol_obj;
    }
    PyObject *obj = PyUnicode_DecodeUTF8(s, n, NULL);
    if (obj == NULL)
        return NULL;
    if (n < (Py_ssize_t)sizeof(cached_symbol)) {
        Py_XDECREF(cached_symbol_obj);
        memcpy(cached_symbol, s, (size_t)n);
        cached_symbol_len = n;
        Py_INCREF(obj);
        cached_symbol_obj = obj;
    }
    return obj;
}

/* ------------------------------------------------------------------ objects */

typedef enum { V_INT, V_NULLABLE_INT, V_STRING, V_DECIMAL, V_BOOL, V_LEVELS, V_MARKET } ValueKind;

/* One key of a data object: its name, how its value is read, whether it must be there. */
typedef struct {
    const char *key;
    ValueKind kind;
    int required;
} Field;

/* What was read for one field. */
typedef struct {
    int seen;
    int null;      /* V_NULLABLE_INT: the value was null */
    int64_t i;     /* V_INT, V_NULLABLE_INT, V_BOOL */
    double d;      /* V_DECIMAL */
    const char *s; /* V_STRING */
    Py_ssize_t n;
    Packed *levels; /* V_LEVELS: where the levels go (set by the caller) */
} Slot;

static int
read_value(Cursor *c, ValueKind kind, Slot *slot)
{
    switch (kind) {
    case V_INT:
        return read_int(c, &slot->i);
    case V_NULLABLE_INT:
        skip_ws(c);
        if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
            c->p += 4;
            slot->null = 1;
            return 1;
        }
        return read_int(c, &slot->i);
    case V_STRING:
        return read_string(c, &slot->s, &slot->n);
    case V_DECIMAL:
        return read_decimal(c, &slot->d);
    case V_BOOL: {
        int v;
        if (!read_bool(c, &v))
            return 0;
        slot->i = v;
        return 1;
    }
    case V_LEVELS:
        return read_levels(c, slot->levels);
    case V_MARKET:
        /* futures trades: only MARKET fills are trades; the reference parser drops the rest */
        return read_string(c, &slot->s, &slot->n) && slot->n == 6 &&
               memcmp(slot->s, "MARKET", 6) == 0;
    }
    return 0;
}

/*
 * The rest of a data object (after its '{') into one slot per field. Keys not
 * in the table are skipped (scalar values only). 0 when the object is not in
 * the plain layout: a repeated or empty key, a value of another shape, a
 * required field missing.
 */
static int
read_object(Cursor *c, const Field *fields, int nfields, Slot *slots)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == '}')
        return 0;
    for (;;) {
        const char *k;
        Py_ssize_t kn;
        if (!read_string(c, &k, &kn) || kn == 0 || !expect(c, ':'))
            return 0;
        int f = -1;
        for (int j = 0; j < nfields; j++) {
            const char *name = fields[j].key;
            if (name[0] == k[0] && (size_t)kn == strlen(name) && memcmp(k, name, (size_t)kn) == 0) {
                f = j;
                break;
            }
        }
        if (f < 0) {
            if (!skip_scalar(c))
                return 0;
        } else {
            if (slots[f].seen || !read_value(c, fields[f].kind, &slots[f]))
                return 0;
            slots[f].seen = 1;
        }
        if (expect(c, ','))
            continue;
        if (!expect(c, '}'))
            return 0;
        break;
    }
    for (int j = 0; j < nfields; j++)
        if (fields[j].required && !slots[j].seen)
            return 0;
    return 1;
}

/* Call `type` with `n` arguments of which those flagged in `owned` are new references
 * (NULL if making one failed); the owned ones are released. */
static PyObject *
make_event(PyObject *type, PyObject **args, int n, const int *owned)
{
    PyObject *result = NULL;
    int ok = 1;
    for (int i = 0; i < n; i++)
        if (args[i] == NULL)
            ok = 0;
    if (ok)
        result = PyObject_Vectorcall(type, args, (size_t)n, NULL);
    for (int i = 0; i < n; i++)
        if (owned[i])
            Py_XDECREF(args[i]);
    return result;
}

static PyObject *
int_or_none(const Slot *slot, int64_t scale)
{
    if (!slot->seen || slot->null)
        return Py_NewRef(Py_None);
    return PyLong_FromLongLong(slot->i * scale);
}

static const Field TRADE_FIELDS[] = {
    {"E", V_INT, 1}, {"T", V_INT, 1}, {"s", V_STRING, 1}, {"t", V_INT, 1},
    {"p", V_DECIMAL, 1}, {"q", V_DECIMAL, 1}, {"m", V_BOOL, 1}, {"X", V_MARKET, 0},
};
enum { TR_E, TR_T, TR_S, TR_ID, TR_P, TR_Q, TR_M, TR_X, TR_N };

static PyObject *
build_trade(Cursor *c, PyObject *exchange, PyObject *ts_recv)
{
    Slot v[TR_N] = {{0}};
    if (!read_object(c, TRADE_FIELDS, TR_N, v) || v[TR_T].i > MAX_MS)
        Py_RETURN_NONE;
    double price = v[TR_P].d, qty = v[TR_Q].d;
    if (!(price > 0.0 && price < INFINITY && qty > 0.0 && qty < INFINITY))
        Py_RETURN_NONE;
    PyObject *args[8] = {
        exchange,
        symbol_object(v[TR_S].s, v[TR_S].n),
        PyLong_FromLongLong(v[TR_T].i * MS),
        ts_recv,
        PyLong_FromLongLong(v[TR_ID].i),
        PyFloat_FromDouble(price),
        PyFloat_FromDouble(qty),
        v[TR_M].i ? SellStr : BuyStr,
    };
    static const int owned[8] = {0, 1, 1, 0, 1, 1, 1, 0};
    return make_event(TradeType, args, 8, owned);
}

static const Field DEPTH_FIELDS[] = {
    {"E", V_INT, 1}, {"T", V_NULLABLE_INT, 0}, {"s", V_STRING, 1}, {"U", V_INT, 1},
    {"u", V_INT, 1}, {"pu", V_NULLABLE_INT, 0}, {"b", V_LEVELS, 1}, {"a", V_LEVELS, 1},
};
enum { DE_E, DE_T, DE_S, DE_FIRST, DE_LAST, DE_PREV, DE_B, DE_A, DE_N };

static PyObject *
build_depth(Cursor *c, PyObject *exchange, PyObject *ts_recv)
{
    Packed bids, asks;
    packed_init(&bids);
    packed_init(&asks);
    Slot v[DE_N] = {{0}};
    v[DE_B].levels = &bids;
    v[DE_A].levels = &asks;
    PyObject *result = NULL;
    if (read_object(c, DEPTH_FIELDS, DE_N, v) && v[DE_E].i <= MAX_MS &&
        v[DE_LAST].i >= v[DE_FIRST].i) {
        PyObject *args[9] = {
            exchange,
            symbol_object(v[DE_S].s, v[DE_S].n),
            PyLong_FromLongLong(v[DE_E].i * MS),
            ts_recv,
            PyLong_FromLongLong(v[DE_FIRST].i),
            PyLong_FromLongLong(v[DE_LAST].i),
            int_or_none(&v[DE_PREV], 1),
            EmptyTuple,
            EmptyTuple,
        };
        static const int owned[9] = {0, 1, 1, 0, 1, 1, 1, 0, 0};
        PyObject *event = make_event(DepthType, args, 9, owned);
        if (event != NULL) {
            PyObject *b = PyBytes_FromStringAndSize((const char *)bids.v,
                                                    bids.n * (Py_ssize_t)sizeof(double));
            PyObject *a = PyBytes_FromStringAndSize((const char *)asks.v,
                                                    asks.n * (Py_ssize_t)sizeof(double));
            if (b && a)
                result = PyTuple_Pack(3, event, b, a);
            Py_XDECREF(b);
            Py_XDECREF(a);
            Py_DECREF(event);
        }
    } else {
        result = Py_NewRef(Py_None);
    }
    packed_free(&bids);
    packed_free(&asks);
    return result;
}

static const Field TICKER_FIELDS[] = {
    {"E", V_NULLABLE_INT, 0}, {"T", V_NULLABLE_INT, 0}, {"s", V_STRING, 1}, {"u", V_INT, 1},
    {"b", V_DECIMAL, 1}, {"B", V_DECIMAL, 1}, {"a", V_DECIMAL, 1}, {"A", V_DECIMAL, 1},
};
enum { TK_E, TK_T, TK_S, TK_U, TK_BID, TK_BID_QTY, TK_ASK, TK_ASK_QTY, TK_N };

/* A bookTicker (E and T on futures only), with the reference parser's checks. */
static PyObject *
build_ticker(Cursor *c, PyObject *exchange, PyObject *ts_recv)
{
    Slot v[TK_N] = {{0}};
    if (!read_object(c, TICKER_FIELDS, TK_N, v) || v[TK_E].i > MAX_MS)
        Py_RETURN_NONE;
    double bid = v[TK_BID].d, ask = v[TK_ASK].d;
    double bid_qty = v[TK_BID_QTY].d, ask_qty = v[TK_ASK_QTY].d;
    if (!(bid > 0.0 && bid < INFINITY && ask > 0.0 && ask < INFINITY && bid < ask))
        Py_RETURN_NONE;
    if (!(bid_qty >= 0.0 && bid_qty < INFINITY && ask_qty >= 0.0 && ask_qty < INFINITY))
        Py_RETURN_NONE;
    PyObject *args[9] = {
        exchange,
        symbol_object(v[TK_S].s, v[TK_S].n),
        int_or_none(&v[TK_E], MS),
        ts_recv,
        PyLong_FromLongLong(v[TK_U].i),
        PyFloat_FromDouble(bid),
        PyFloat_FromDouble(bid_qty),
        PyFloat_FromDouble(ask),
        PyFloat_FromDouble(ask_qty),
    };
    static const int owned[9] = {0, 1, 1, 0, 1, 1, 1, 1, 1};
    return make_event(TickerType, args, 9, owned);
}

enum { KIND_OTHER, KIND_TRADE, KIND_DEPTH, KIND_TICKER };

/* `<symbol>@trade` → trade; `<symbol>@depth` or `<symbol>@depth@<speed>` → depth. */
static int
stream_kind(const char *s, Py_ssize_t n)
{
    const char *at = memchr(s, '@', (size_t)n);
    if (at == NULL || at == s)
        return KIND_OTHER;
    const char *rest = at + 1;
    Py_ssize_t rn = n - (rest - s);
    if (rn == 5 && memcmp(rest, "trade", 5) == 0)
        return KIND_TRADE;
    if (rn >= 5 && memcmp(rest, "depth", 5) == 0 && (rn == 5 || rest[5] == '@'))
        return KIND_DEPTH;
    if (rn == 10 && memcmp(rest, "bookTicker", 10) == 0)
        return KIND_TICKER;
    return KIND_OTHER;
}

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scan(payload, exchange, ts_recv)");
        return NULL;
    }
    if (TradeType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_cscan.configure() was not called");
        return NULL;
    }
    PyObject *payload = args[0];
    if (!PyBytes_Check(payload))
        Py_RETURN_NONE;
    Cursor c = {PyBytes_AS_STRING(payload), PyBytes_AS_STRING(payload) + PyBytes_GET_SIZE(payload)};
    static const char head[] = "{\"stream\":";
    if (c.end - c.p < (Py_ssize_t)sizeof(head) || memcmp(c.p, head, sizeof(head) - 1) != 0)
        Py_RETURN_NONE;
    c.p += sizeof(head) - 1;
    const char *stream;
    Py_ssize_t sn;
    if (!read_string(&c, &stream, &sn) || !expect(&c, ','))
        Py_RETURN_NONE;
    int kind = stream_kind(stream, sn);
    if (kind == KIND_OTHER)
        Py_RETURN_NONE;
    const char *k;
    Py_ssize_t kn;
    if (!read_string(&c, &k, &kn) || kn != 4 || memcmp(k, "data", 4) != 0 || !expect(&c, ':') ||
        !expect(&c, '{'))
        Py_RETURN_NONE;
    PyObject *result = kind == KIND_TRADE   ? build_trade(&c, args[1], args[2])
                       : kind == KIND_DEPTH ? build_depth(&c, args[1], args[2])
                                            : build_ticker(&c, args[1], args[2]);
    if (result == NULL || result == Py_None)
        return result;
    /* the envelope must end here: nothing after the data object but its closing brace */
    if (!expect(&c, '}')) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    skip_ws(&c);
    if (c.p != c.end) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyUnicode_Check(args[3]) || !PyUnicode_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "configure(trade_type, depth_type, ticker_type, buy, sell)");
        return NULL;
    }
    Py_XSETREF(TradeType, Py_NewRef(args[0]));
    Py_XSETREF(DepthType, Py_NewRef(args[1]));
    Py_XSETREF(TickerType, Py_NewRef(args[2]));
    Py_XSETREF(BuyStr, Py_NewRef(args[3]));
    Py_XSETREF(SellStr, Py_NewRef(args[4]));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(payload, exchange, ts_recv): a Trade, a BestBidAsk, (DepthUpdate, bids, asks) or None."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(trade, depth, ticker types, buy, sell): the classes and strings scan() builds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "microstream.venues.binance._cscan",
    .m_doc = "Compiled reader of Binance's trade and depth frames (the fast lane).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__cscan(void)
{
    EmptyTuple = PyTuple_New(0);
    if (EmptyTuple == NULL)
        return NULL;
    return PyModule_Create(&cscan_module);
}
