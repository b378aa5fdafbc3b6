"""Score impressions with the model Freshet publishes to Redis, from Python.

A thin ctypes layer over the C serving library ``libfreshet_serving`` (include/freshet_serving.h), so
Python scores with the trainer's own decoder, hashing and forward pass rather than a second
implementation. The layout it reads is docs/redis-layout.md.

    from freshet_serving import Serving

    with Serving("127.0.0.1", 6379, "freshet") as model:
        model.load()                                   # the active version
        scores = model.score({"type": "impression", "id": "i-1", "ts": 1764547200000,
                              "scenario": "video", "features": {"user_id": "u12"}})
        print(model.version, scores.pctr, scores.pcvr, scores.pctcvr)
        model.follow(block_ms=1000)                    # picks up pushes and rollbacks

Finding the library: the path in ``FRESHET_SERVING_LIB`` when set, else the directory pkg-config gives
for ``freshet_serving`` (what ``cmake --install`` writes), else the dynamic loader's search path.

Threads: one ``Serving`` per thread (the C handle is used by one thread at a time).
"""

import ctypes
import ctypes.util
import json
import os
import subprocess
from typing import Iterable, List, NamedTuple, Optional, Union

__all__ = ["Serving", "Scores", "Stats", "FreshetError", "load_library"]

_ERRLEN = 1024


class FreshetError(RuntimeError):
    """A call of the serving library failed; the message is the library's own."""


class Scores(NamedTuple):
    pctr: float  # P(click | impression)
    pcvr: float  # P(conversion | click), after the manifest's serve transform
    pctcvr: float  # P(click and conversion | impression)


class Stats(NamedTuple):
    loads: int
    republished: int
    refused_versions: int
    refused_rows: int


class _Scores(ctypes.Structure):
    _fields_ = [("pctr", ctypes.c_float), ("pcvr", ctypes.c_float), ("pctcvr", ctypes.c_float)]


class _Stats(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in Stats._fields]


def _candidates() -> List[str]:
    explicit = os.environ.get("FRESHET_SERVING_LIB")
    if explicit:
        return [explicit]
    found = []
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "freshet_serving"], capture_output=True,
                                text=True, check=True).stdout.strip()
        if libdir:
            found.append(os.path.join(libdir, "libfreshet_serving.so"))
    except (OSError, subprocess.CalledProcessError):
        pass
    name = ctypes.util.find_library("freshet_serving")
    if name:
        found.append(name)
    found.append("libfreshet_serving.so.0")
    return found


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, c_char_p, c_int, c_size_t = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
    sigs = {
        "freshet_serving_open": (p, [c_char_p, c_int, c_char_p, c_char_p, c_size_t]),
        "freshet_serving_close": (None, [p]),
        "freshet_serving_load": (c_int, [p, c_char_p, c_size_t]),
        "freshet_serving_follow": (c_int, [p, c_int, c_char_p, c_size_t]),
        "freshet_serving_version": (ctypes.c_uint64, [p]),
        "freshet_serving_manifest": (c_char_p, [p]),
        "freshet_serving_scenario_name": (c_char_p, [p, ctypes.c_int32]),
        "freshet_serving_get_stats": (None, [p, ctypes.POINTER(_Stats)]),
        "freshet_impression_new": (p, []),
        "freshet_impression_free": (None, [p]),
        "freshet_impression_id": (c_char_p, [p]),
        "freshet_impression_scenario": (ctypes.c_int32, [p]),
        "freshet_serving_decode": (c_int, [p, c_char_p, c_size_t, p, c_char_p, c_size_t]),
        "freshet_serving_score": (c_int, [p, p, ctypes.POINTER(_Scores), c_char_p, c_size_t]),
        "freshet_serving_score_batch": (c_int, [p, ctypes.POINTER(p), c_int, ctypes.POINTER(_Scores), c_char_p,
                                                c_size_t]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


_lib: Optional[ctypes.CDLL] = None


def load_library() -> ctypes.CDLL:
    """The C library, loaded once per process (FreshetError, saying where it looked, when absent)."""
    global _lib  # the process-wide handle of a shared library, like any dlopen
    if _lib is None:
        tried = []
        for path in _candidates():
            try:
                _lib = _declare(ctypes.CDLL(path))
                break
            except OSError as e:
                tried.append(f"{path}: {e}")
        if _lib is None:
            raise FreshetError("libfreshet_serving not found; install it (`cmake --install BUILD_DIR`) or set "
                               "FRESHET_SERVING_LIB to its path. Tried: " + "; ".join(tried))
    return _lib


Impression = Union[str, bytes, dict]


def _as_json(impression: Impression) -> bytes:
    if isinstance(impression, dict):
        return json.dumps(impression, separators=(",", ":")).encode()
    if isinstance(impression, str):
        return impression.encode()
    return bytes(impression)


class Serving:
    """One reader of a Freshet model in Redis: host, port and the daemon's ``redis.prefix``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, prefix: str = "freshet"):
        self._lib = load_library()
        self._err = ctypes.create_string_buffer(_ERRLEN)
        self._handle = self._lib.freshet_serving_open(host.encode(), port, prefix.encode(), self._err, _ERRLEN)
        if not self._handle:
            raise FreshetError(self._err.value.decode(errors="replace"))
        self._imps: List[int] = []  # reusable impression buffers, grown for the largest batch
        self._imps_for(1)

    def close(self) -> None:
        if self._handle:
            for imp in self._imps:
                self._lib.freshet_impression_free(imp)
            self._imps = []
            self._lib.freshet_serving_close(self._handle)
            self._handle = None

    def __enter__(self) -> "Serving":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _fail(self) -> FreshetError:
        return FreshetError(self._err.value.decode(errors="replace"))

    def _live(self):
        if not self._handle:
            raise FreshetError("this Serving was closed")
        return self._handle

    def _imps_for(self, n: int) -> List[int]:
        while len(self._imps) < n:
            imp = self._lib.freshet_impression_new()
            if not imp:
                raise MemoryError("freshet_impression_new")
            self._imps.append(imp)
        return self._imps[:n]

    # ---- the model ----

    def load(self) -> int:
        """Loads the active version; returns its number (FreshetError: nothing published, refused, ...)."""
        if self._lib.freshet_serving_load(self._live(), self._err, _ERRLEN) != 0:
            raise self._fail()
        return self.version

    def follow(self, block_ms: int = 1000) -> bool:
        """Waits up to block_ms for a push or a rollback; True when another version was loaded."""
        r = self._lib.freshet_serving_follow(self._live(), block_ms, self._err, _ERRLEN)
        if r < 0:
            raise self._fail()
        return r == 1

    @property
    def version(self) -> int:
        """The loaded version, 0 before the first load."""
        return self._lib.freshet_serving_version(self._live())

    @property
    def manifest(self) -> Optional[dict]:
        """The loaded version's manifest (docs/redis-layout.md), None before the first load."""
        text = self._lib.freshet_serving_manifest(self._live())
        return json.loads(text) if text else None

    @property
    def scenarios(self) -> List[str]:
        names, i = [], 0
        while True:
            name = self._lib.freshet_serving_scenario_name(self._live(), i)
            if name is None:
                return names
            names.append(name.decode())
            i += 1

    @property
    def stats(self) -> Stats:
        """What the reader loaded, noticed and refused (NaN rows, versions failing their checks)."""
        st = _Stats()
        self._lib.freshet_serving_get_stats(self._live(), ctypes.byref(st))
        return Stats(*(getattr(st, f) for f in Stats._fields))

    # ---- scoring ----

    def _decode(self, impression: Impression, imp) -> None:
        text = _as_json(impression)
        r = self._lib.freshet_serving_decode(self._live(), text, len(text), imp, self._err, _ERRLEN)
        if r < 0:
            raise self._fail()
        if r == 1:
            raise FreshetError("not an impression (a click or a conversion): nothing to score")

    def score(self, impression: Impression) -> Scores:
        """Scores one EVENTS.md impression (a dict, or its JSON text) with the loaded version."""
        imp = self._imps_for(1)[0]
        self._decode(impression, imp)
        out = _Scores()
        if self._lib.freshet_serving_score(self._live(), imp, ctypes.byref(out), self._err, _ERRLEN) != 0:
            raise self._fail()
        return Scores(out.pctr, out.pcvr, out.pctcvr)

    def score_batch(self, impressions: Iterable[Impression]) -> List[Scores]:
        """Scores the candidates of one request with one Redis round trip; equals score() one by one."""
        items = list(impressions)
        if not items:
            return []
        imps = self._imps_for(len(items))
        for item, imp in zip(items, imps):
            self._decode(item, imp)
        arr = (ctypes.c_void_p * len(items))(*imps)
        out = (_Scores * len(items))()
        if self._lib.freshet_serving_score_batch(self._live(), arr, len(items), out, self._err, _ERRLEN) != 0:
            raise self._fail()
        return [Scores(o.pctr, o.pcvr, o.pctcvr) for o in out]

    def impression_id(self, impression: Impression) -> str:
        """The id the decoder reads from an impression (a convenience for logs and joins)."""
        imp = self._imps_for(1)[0]
        self._decode(impression, imp)
        return self._lib.freshet_impression_id(imp).decode()
