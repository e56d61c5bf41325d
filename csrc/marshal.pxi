# A handler's result as Lambda's Python runtime writes it.  awslambdaric encodes with
# simplejson: ", " and ": " separators, ASCII-only output except on python3.12/3.13,
# Decimal as a number, NaN and Infinity allowed.  msgspec encodes the common case many
# times faster; these two C passes make its output byte-identical, and say when only the
# standard library can produce the exact bytes (non-finite or exponent-form floats,
# None/bool/float keys), or which value could not be marshalled at all.
from decimal import Decimal as _Decimal

cdef int _MAX_DEPTH = 1000
STDLIB = object()  # check_result's answer for "encode with the json module"


cdef inline bint _float_needs_stdlib(double x):
    # Python's repr switches to exponent form at 1e16 and below 1e-4; msgspec does not.
    if x != x or x == float("inf") or x == float("-inf"):
        return True
    if x < 0:
        x = -x
    return x >= 1e16 or (x != 0 and x < 1e-4)


cpdef object check_result(object value, int depth=0):
    """None when msgspec plus ``lambda_layout`` give Lambda's bytes for ``value``;
    ``STDLIB`` when only the json module does; otherwise the first value Lambda's runtime
    could not marshal (a set, a datetime, an object...)."""
    cdef type kind = type(value)
    cdef object answer = None
    if value is None or kind is str or kind is int or kind is bool:
        return None
    if kind is float:
        return STDLIB if _float_needs_stdlib(value) else None
    if depth > _MAX_DEPTH:
        return None  # the encoder reports the recursion itself
    if kind is dict:
        for key, item in (<dict>value).items():
            if type(key) is not str and type(key) is not int:
                if key is None or isinstance(key, (str, int, float)):
                    answer = STDLIB
                else:
                    return key
            found = check_result(item, depth + 1)
            if found is STDLIB:
                answer = STDLIB
            elif found is not None:
                return found
        return answer
    if kind is list or kind is tuple:
        for item in value:
            found = check_result(item, depth + 1)
            if found is STDLIB:
                answer = STDLIB
            elif found is not None:
                return found
        return answer
    if isinstance(value, _Decimal):
        return None
    if isinstance(value, (str, int, float, dict, list, tuple)):
        return STDLIB  # subclasses: the json module knows how simplejson treats them
    return value


cdef const char *_HEX = b"0123456789abcdef"


def lambda_layout(bytes compact, bint ascii):
    """msgspec's compact JSON with simplejson's separators (and ``\\u00e9``-style escapes for
    every non-ASCII character when ``ascii``)."""
    cdef const unsigned char *src = <const unsigned char *>PyBytes_AS_STRING(compact)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(compact)
    cdef Py_ssize_t i = 0
    cdef bytearray out = bytearray(n + n // 4 + 16)
    cdef unsigned char *dst
    cdef Py_ssize_t j = 0
    cdef bint in_string = False
    cdef unsigned char c
    cdef unsigned int cp, hi, lo
    cdef int extra, k
    while i < n:
        if j + 13 > len(out):
            out.extend(bytes(len(out)))
        dst = <unsigned char *>(<char *>out)
        c = src[i]
        if in_string:
            if c == b'\\':
                dst[j] = c
                dst[j + 1] = src[i + 1]
                j += 2
                i += 2
                continue
            if c == b'"':
                in_string = False
            elif c >= 0x80 and ascii:
                extra = 1 if c < 0xE0 else (2 if c < 0xF0 else 3)
                cp = c & (0x1F if extra == 1 else (0x0F if extra == 2 else 0x07))
                for k in range(1, extra + 1):
                    cp = (cp << 6) | (src[i + k] & 0x3F)
                i += extra + 1
                if cp >= 0x10000:
                    cp -= 0x10000
                    hi = 0xD800 | (cp >> 10)
                    lo = 0xDC00 | (cp & 0x3FF)
                    j = _escape(dst, j, hi)
                    j = _escape(dst, j, lo)
                else:
                    j = _escape(dst, j, cp)
                continue
        elif c == b'"':
            in_string = True
        elif c == b',' or c == b':':
            dst[j] = c
            dst[j + 1] = b' '
            j += 2
            i += 1
            continue
        dst[j] = c
        j += 1
        i += 1
    return PyBytes_FromStringAndSize(<char *>out, j)


cdef inline Py_ssize_t _escape(unsigned char *dst, Py_ssize_t j, unsigned int cp):
    dst[j] = b'\\'
    dst[j + 1] = b'u'
    dst[j + 2] = _HEX[(cp >> 12) & 0xF]
    dst[j + 3] = _HEX[(cp >> 8) & 0xF]
    dst[j + 4] = _HEX[(cp >> 4) & 0xF]
    dst[j + 5] = _HEX[cp & 0xF]
    return j + 6
