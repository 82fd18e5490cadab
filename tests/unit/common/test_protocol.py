"""The envelope: round trips, and every way a message can be refused."""
import msgpack
import pytest

from common import protocol
from common.protocol import ProtocolError


def test_round_trip_keeps_every_field():
    raw = protocol.encode("syscall", 42, "g/userspace",
                          {"task": 1, "nr": 39, "args": [0, 2**64 - 1, 0, 0, 0, 0],
                           "rip": 0x401000, "rsp": 0x7ffc0000}, traceparent="00-ab-cd-01")
    msg = protocol.decode(raw)
    assert (msg.type, msg.id, msg.sender, msg.traceparent) == ("syscall", 42, "g/userspace",
                                                               "00-ab-cd-01")
    assert msg["args"][1] == 2**64 - 1 and msg["nr"] == 39


def test_negative_results_and_binary_data_survive():
    msg = protocol.decode(protocol.encode("block_done", 1, "x", {"status": -5, "data": b"\0\xff"}))
    assert msg["status"] == -5 and msg["data"] == b"\0\xff"


@pytest.mark.parametrize("frame, reason", [
    ([protocol.VERSION, "nope", 1, "s", None, {}], "unknown message type"),
    ([2, "ping", 1, "s", None, {}], "protocol version 2"),
    ([protocol.VERSION, "ret", 1, "s", None, {"task": 1}], "missing field 'value'"),
    ([protocol.VERSION, "ret", 1, "s", None, {"task": 1, "value": "0"}], "field 'value'"),
    ([protocol.VERSION, "ret", 1, "s", None, {"task": True, "value": 0}], "field 'task'"),
    ([protocol.VERSION, "ping", 1, "s", None, {"x": 1}], "unknown field"),
    ([protocol.VERSION, "ping", "1", "s", None, {}], "request id"),
    ([protocol.VERSION, "ping", 1, "s", None, []], "body must be a map"),
    ({"type": "ping"}, "6-element"),
])
def test_bad_messages_are_refused_with_a_reason(frame, reason):
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode(msgpack.packb(frame))


def test_not_msgpack_is_refused():
    with pytest.raises(ProtocolError, match="not msgpack"):
        protocol.decode(b"\xc1")


def test_encode_refuses_what_decode_would():
    with pytest.raises(ProtocolError):
        protocol.encode("ret", 1, "k", {"task": 1})


def test_request_id_is_recovered_for_error_replies():
    assert protocol.request_id(msgpack.packb([9, "x", 77, "s", None, {}])) == 77
    assert protocol.request_id(b"\xc1") == 0


def test_decoding_a_block_of_data_feeds_only_the_envelopes_header(monkeypatch):
    """The envelope check reads the array header from a frame's first bytes
    alone: a 16 MiB block in a message is not copied into an unpacker to
    learn that it is an array of six; a malformed frame's id is still found."""
    fed = []

    class Recording(msgpack.Unpacker):
        def feed(self, data):
            fed.append(len(data))
            super().feed(data)
    monkeypatch.setattr(protocol.msgpack, "Unpacker", Recording)
    block = b"\xa5" * (1 << 20)
    msg = protocol.decode(protocol.encode("block_done", 9, "ubd", {"status": 0, "data": block}))
    assert msg["data"] == block and max(fed) <= protocol.ARRAY_HEADER_MAX
    bad = msgpack.packb([1, "block_done", 77, "ubd", None, {"status": 0}])    # no data
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(bad)
    assert protocol.request_id(bad) == 77
