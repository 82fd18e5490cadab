"""What the fuzzer sends: hypothesis strategies for ZeroMQ messages, built
from common/protocol.py's MESSAGES, so that a message type added there is
fuzzed without a line changed here.

A draw is a list of frames for one ZeroMQ message.  Most are envelopes of a
real message type whose body is valid or broken in one way (a field
missing, one too many, of the wrong type, at an integer's edge, oversized),
sent with a wrong version, type, id or sender now and then; the rest are
raw frames that are not messages at all: random bytes, a valid message cut
short, msgpack of the wrong shape, headers that promise huge arrays, maps
or strings, deep nesting, and messages of several frames.
"""
from __future__ import annotations

import msgpack
from hypothesis import strategies as st

from common import protocol
from common.protocol import BLOCK_MAX, MESSAGES, VERSION

I64_MIN, U64_MAX = -(1 << 63), (1 << 64) - 1         # what msgpack can carry
EDGES = (0, 1, -1, 255, 256, 65535, 65536, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32,
         (1 << 63) - 1, I64_MIN, U64_MAX, BLOCK_MAX, BLOCK_MAX + 1)
# sizes of oversized strings and bytes: past every bound the services keep
# (a ctl argument, a page, a block, a block request) and ZeroMQ's nothing
# (weighted: a 16 MiB one is one in a hundred, or a long run would move little else)
HUGE = (4097,) * 70 + (1 << 16,) * 25 + (1 << 20,) * 4 + (BLOCK_MAX + 1,)

integers = st.one_of(st.sampled_from(EDGES), st.integers(0, 8), st.integers(-1000, 1000),
                     st.integers(I64_MIN, U64_MAX))
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=20))
# any value msgpack carries, nested a little
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=12)


@st.composite
def oversized(draw) -> bytes | str:
    """A string or bytes past a bound; made, not drawn, so a 16 MiB one is cheap."""
    size = draw(st.sampled_from(HUGE))
    return "x" * size if draw(st.booleans()) else bytes(size)


def valid(types: tuple) -> st.SearchStrategy:
    """A value a field of these types accepts."""
    kind = types[0]
    if kind is bool:
        return st.booleans()
    if kind is int:
        return integers
    if kind is bytes:
        return st.binary(max_size=64)
    if kind is str:
        return st.text(max_size=32)
    if kind is list:
        return st.lists(st.one_of(integers, anything), max_size=8)
    return st.dictionaries(st.text(max_size=8), anything, max_size=5)


def bodies(type_: str) -> st.SearchStrategy:
    """The body of a type_ message: valid, or broken in one way."""
    fields = MESSAGES[type_].fields
    body = st.fixed_dictionaries({name: valid(types) for name, types in fields.items()})
    names = sorted(fields)

    @st.composite
    def broken(draw) -> dict:
        b = draw(body)
        how = draw(st.sampled_from(("extra", "missing", "confused", "oversized")
                                   if names else ("extra",)))
        if how == "extra":
            b[draw(st.text(max_size=8).filter(lambda k: k not in fields))] = draw(anything)
        else:
            name = draw(st.sampled_from(names))
            if how == "missing":
                del b[name]
            else:
                b[name] = draw(anything if how == "confused" else oversized())
        return b

    return st.one_of(body, broken())


BODIES = {type_: bodies(type_) for type_ in MESSAGES}


@st.composite
def envelopes(draw, senders: tuple[str, ...]) -> list:
    """[version, type, id, sender, traceparent, body], its parts mostly right."""
    type_ = draw(st.sampled_from(sorted(MESSAGES)))
    env = [VERSION, type_, draw(integers), draw(st.sampled_from(senders)),
           draw(st.one_of(st.none(), st.just("00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
                          st.text(max_size=60))),
           draw(BODIES[type_])]
    if draw(st.integers(0, 9)) == 0:          # one part of the envelope wrong
        env[draw(st.integers(0, 5))] = draw(anything)
    if draw(st.integers(0, 19)) == 0:         # too short or too long
        env = env[:draw(st.integers(0, 5))] if draw(st.booleans()) else env + [draw(anything)]
    return env


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _header(code: int, count: int) -> bytes:
    return bytes((code,)) + count.to_bytes(4, "big")


# msgpack that promises more than it holds, or nests deeper than a decoder goes
BOMBS = (_header(0xDD, (1 << 32) - 1),            # array32 of 4 G elements
         _header(0xDF, (1 << 32) - 1),            # map32 of 4 G pairs
         _header(0xDB, (1 << 32) - 1) + b"x",     # str32 of 4 GiB
         _header(0xC6, (1 << 32) - 1) + b"x",     # bin32 of 4 GiB
         b"\x96" + _header(0xDD, 1 << 20),        # an envelope whose 1st part lies
         b"\x91" * 100_000 + b"\xc0",             # 100,000 nested arrays
         b"\x81\xa1k" * 10_000 + b"\xc0",         # 10,000 nested maps
         b"\xc1", b"",                            # never-used byte, empty frame
         pack([0] * (1 << 20)), pack({str(i): 0 for i in range(1 << 16)}))   # big, and real


@st.composite
def raw_frames(draw, senders: tuple[str, ...]) -> bytes:
    """One frame that is not a message, or is one cut short."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=256))
    if kind == 1:
        whole = pack(draw(envelopes(senders)))
        return whole[:draw(st.integers(0, max(len(whole) - 1, 0)))]
    if kind == 2:
        return pack(draw(anything))
    if kind == 3:
        return draw(st.sampled_from(BOMBS))
    return pack(draw(oversized()))


class Frames(list):
    """One message's frames, shown short: hypothesis makes a repr of every
    example, and that of 16 MiB of bytes holds the GIL for seconds (the
    kernel double's keepalive thread with it)."""

    def __repr__(self) -> str:
        return "Frames(" + ", ".join(f"{len(f)} bytes {bytes(f[:24])!r}" for f in self) + ")"


@st.composite
def messages(draw, senders: tuple[str, ...] = ("fuzz",)) -> Frames:
    """The frames of one ZeroMQ message to a service."""
    kind = draw(st.integers(0, 19))
    if kind < 14:
        frames = [pack(draw(envelopes(senders)))]
    elif kind < 18:
        frames = [draw(raw_frames(senders))]
    else:                                       # more frames than one message has
        frames = [pack(draw(envelopes(senders))) for _ in range(draw(st.integers(2, 4)))]
    return Frames(frames)


def refused(frames: list[bytes]) -> bool:
    """Whether a service must answer these frames with an error (the
    protocol refuses them before any service sees a message)."""
    if len(frames) != 1:
        return True
    try:
        protocol.decode(frames[0])
    except protocol.ProtocolError:
        return True
    return False
