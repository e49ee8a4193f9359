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

enum { F_E = 1, F_T = 2, F_S = 4, F_TID = 8, F_P = 16, F_Q = 32, F_M = 64, F_X = 128,
       F_U = 256, F_LU = 512, F_PU = 1024, F_B = 2048, F_A = 4096, F_BQ = 8192, F_AQ = 16384 };

/* Bit of a one-letter key in the object being read, or -1 for keys skipped. */
static int
key_bit(const char *k, Py_ssize_t n, int depth)
{
    if (n != 1)
        return n == 0 ? 0 : -1;
    switch (k[0]) {
    case 'E': return F_E;
    case 'T': return F_T;
    case 's': return F_S;
    case 't': return depth ? -1 : F_TID;
    case 'p': return depth ? -1 : F_P;
    case 'q': return depth ? -1 : F_Q;
    case 'm': return depth ? -1 : F_M;
    case 'X': return depth ? -1 : F_X;
    case 'U': return depth ? F_U : -1;
    case 'u': return depth ? F_LU : -1;
    case 'b': return depth ? F_B : -1;
    case 'a': return depth ? F_A : -1;
    default: return -1;
    }
}

static PyObject *
build_trade(Cursor *c, PyObject *exchange, PyObject *ts_recv)
{
    int64_t E = 0, T = 0, tid = 0;
    double price = 0.0, qty = 0.0;
    int m = 0, seen = 0;
    const char *sym = NULL;
    Py_ssize_t symn = 0;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}')
        Py_RETURN_NONE;
    for (;;) {
        const char *k;
        Py_ssize_t kn;
        if (!read_string(c, &k, &kn) || !expect(c, ':'))
            Py_RETURN_NONE;
        int bit = key_bit(k, kn, 0);
        if (bit == 0 || (bit > 0 && (seen & bit)))
            Py_RETURN_NONE;
        int ok;
        switch (bit) {
        case F_E: ok = read_int(c, &E); break;
        case F_T: ok = read_int(c, &T); break;
        case F_TID: ok = read_int(c, &tid); break;
        case F_S: ok = read_string(c, &sym, &symn); break;
        case F_P: ok = read_decimal(c, &price); break;
        case F_Q: ok = read_decimal(c, &qty); break;
        case F_M: ok = read_bool(c, &m); break;
        case F_X: {
            const char *x;
            Py_ssize_t xn;
            /* futures: only MARKET fills are trades; the reference parser drops the rest */
            ok = read_string(c, &x, &xn) && xn == 6 && memcmp(x, "MARKET", 6) == 0;
            break;
        }
        default: ok = skip_scalar(c); break;
        }
        if (!ok)
            Py_RETURN_NONE;
        if (bit > 0)
            seen |= bit;
        if (expect(c, ','))
            continue;
        if (!expect(c, '}'))
            Py_RETURN_NONE;
        break;
    }
    const int need = F_E | F_T | F_S | F_TID | F_P | F_Q | F_M;
    if ((seen & need) != need || T > MAX_MS)
        Py_RETURN_NONE;
    if (!(price > 0.0 && price < INFINITY && qty > 0.0 && qty < INFINITY))
        Py_RETURN_NONE;
    PyObject *args[8] = {NULL};
    args[0] = exchange;
    args[1] = symbol_object(sym, symn);
    args[2] = PyLong_FromLongLong(T * MS);
    args[3] = ts_recv;
    args[4] = PyLong_FromLongLong(tid);
    args[5] = PyFloat_FromDouble(price);
    args[6] = PyFloat_FromDouble(qty);
    args[7] = m ? SellStr : BuyStr;
    PyObject *result = NULL;
    if (args[1] && args[2] && args[4] && args[5] && args[6])
        result = PyObject_Vectorcall(TradeType, args, 8, NULL);
    Py_XDECREF(args[1]);
    Py_XDECREF(args[2]);
    Py_XDECREF(args[4]);
    Py_XDECREF(args[5]);
    Py_XDECREF(args[6]);
    return result;
}

static PyObject *
build_depth(Cursor *c, PyObject *exchange, PyObject *ts_recv)
{
    int64_t E = 0, T = 0, U = 0, u = 0, pu = 0;
    int seen = 0, pu_null = 0;
    const char *sym = NULL;
    Py_ssize_t symn = 0;
    Packed bids, asks;
    PyObject *result = NULL;
    packed_init(&bids);
    packed_init(&asks);
    skip_ws(c);
    if (c->p < c->end && *c->p == '}')
        goto none;
    for (;;) {
        const char *k;
        Py_ssize_t kn;
        if (!read_string(c, &k, &kn) || !expect(c, ':'))
            goto none;
        int bit = (kn == 2 && k[0] == 'p' && k[1] == 'u') ? F_PU : key_bit(k, kn, 1);
        if (bit == 0 || (bit > 0 && (seen & bit)))
            goto none;
        int ok;
        switch (bit) {
        case F_E: ok = read_int(c, &E); break;
        case F_T: ok = read_int(c, &T); break;
        case F_U: ok = read_int(c, &U); break;
        case F_LU: ok = read_int(c, &u); break;
        case F_PU:
            skip_ws(c);
            if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
                c->p += 4;
                pu_null = 1;
                ok = 1;
            } else {
                ok = read_int(c, &pu);
            }
            break;
        case F_S: ok = read_string(c, &sym, &symn); break;
        case F_B: ok = read_levels(c, &bids); break;
        case F_A: ok = read_levels(c, &asks); break;
        default: ok = skip_scalar(c); break;
        }
        if (!ok)
            goto none;
        if (bit > 0)
            seen |= bit;
        if (expect(c, ','))
            continue;
        if (!expect(c, '}'))
            goto none;
        break;
    }
    const int need = F_E | F_S | F_U | F_LU | F_B | F_A;
    if ((seen & need) != need || E > MAX_MS || u < U)
        goto none;
    PyObject *args[9] = {NULL};
    args[0] = exchange;
    args[1] = symbol_object(sym, symn);
    args[2] = PyLong_FromLongLong(E * MS);
    args[3] = ts_recv;
    args[4] = PyLong_FromLongLong(U);
    args[5] = PyLong_FromLongLong(u);
    if ((seen & F_PU) && !pu_null) {
        args[6] = PyLong_FromLongLong(pu);
    } else {
        Py_INCREF(Py_None);
        args[6] = Py_None;
    }
    args[7] = EmptyTuple;
    args[8] = EmptyTuple;
    PyObject *event = NULL, *b = NULL, *a = NULL;
    if (args[1] && args[2] && args[4] && args[5] && args[6])
        event = PyObject_Vectorcall(DepthType, args, 9, NULL);
    for (int i = 1; i < 7; i++)
        if (i != 3)
            Py_XDECREF(args[i]);
    if (event != NULL) {
        b = PyBytes_FromStringAndSize((const char *)bids.v, bids.n * (Py_ssize_t)sizeof(double));
        a = PyBytes_FromStringAndSize((const char *)asks.v, asks.n * (Py_ssize_t)sizeof(double));
        if (b && a)
            result = PyTuple_Pack(3, event, b, a);
    }
    Py_XDECREF(event);
    Py_XDECREF(b);
    Py_XDECREF(a);
    packed_free(&bids);
    packed_free(&asks);
    return result;
none:
    packed_free(&bids);
    packed_free(&asks);
    Py_RETURN_NONE;
}

/* A bookTicker: u, s, b, B, a, A (E and T on futures); other keys skipped. */
static PyObject *
build_ticker(Cursor *c, PyObject *exchange, PyObject *ts_recv)
{
    int64_t E = 0, T = 0, u = 0;
    double bid = 0.0, bid_qty = 0.0, ask = 0.0, ask_qty = 0.0;
    int seen = 0;
    const char *sym = NULL;
    Py_ssize_t symn = 0;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}')
        Py_RETURN_NONE;
    for (;;) {
        const char *k;
        Py_ssize_t kn;
        if (!read_string(c, &k, &kn) || !expect(c, ':'))
            Py_RETURN_NONE;
        int bit = -1;
        if (kn == 0)
            bit = 0;
        else if (kn == 1) {
            switch (k[0]) {
            case 'E': bit = F_E; break;
            case 'T': bit = F_T; break;
            case 's': bit = F_S; break;
            case 'u': bit = F_LU; break;
            case 'b': bit = F_B; break;
            case 'B': bit = F_BQ; break;
            case 'a': bit = F_A; break;
            case 'A': bit = F_AQ; break;
            default: break;
            }
        }
        if (bit == 0 || (bit > 0 && (seen & bit)))
            Py_RETURN_NONE;
        int ok;
        switch (bit) {
        case F_E: ok = read_int(c, &E); break;
        case F_T: ok = read_int(c, &T); break;
        case F_LU: ok = read_int(c, &u); break;
        case F_S: ok = read_string(c, &sym, &symn); break;
        case F_B: ok = read_decimal(c, &bid); break;
        case F_BQ: ok = read_decimal(c, &bid_qty); break;
        case F_A: ok = read_decimal(c, &ask); break;
        case F_AQ: ok = read_decimal(c, &ask_qty); break;
        default: ok = skip_scalar(c); break;
        }
        if (!ok)
            Py_RETURN_NONE;
        if (bit > 0)
            seen |= bit;
        if (expect(c, ','))
            continue;
        if (!expect(c, '}'))
            Py_RETURN_NONE;
        break;
    }
    const int need = F_S | F_LU | F_B | F_BQ | F_A | F_AQ;
    if ((seen & need) != need || E > MAX_MS)
        Py_RETURN_NONE;
    /* the reference parser's checks: positive finite prices, bid below ask, quantities >= 0 */
    if (!(bid > 0.0 && bid < INFINITY && ask > 0.0 && ask < INFINITY && bid < ask))
        Py_RETURN_NONE;
    if (!(bid_qty >= 0.0 && bid_qty < INFINITY && ask_qty >= 0.0 && ask_qty < INFINITY))
        Py_RETURN_NONE;
    PyObject *args[9] = {NULL};
    args[0] = exchange;
    args[1] = symbol_object(sym, symn);
    if (seen & F_E) {
        args[2] = PyLong_FromLongLong(E * MS);
    } else {
        Py_INCREF(Py_None);
        args[2] = Py_None;
    }
    args[3] = ts_recv;
    args[4] = PyLong_FromLongLong(u);
    args[5] = PyFloat_FromDouble(bid);
    args[6] = PyFloat_FromDouble(bid_qty);
    args[7] = PyFloat_FromDouble(ask);
    args[8] = PyFloat_FromDouble(ask_qty);
    PyObject *result = NULL;
    int made = 1;
    for (int i = 1; i < 9; i++)
        if (i != 3 && args[i] == NULL)
            made = 0;
    if (made)
        result = PyObject_Vectorcall(TickerType, args, 9, NULL);
    for (int i = 1; i < 9; i++)
        if (i != 3)
            Py_XDECREF(args[i]);
    return result;
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
