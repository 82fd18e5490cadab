"""The ops (common/ops.py): every type round-trips through the wire and the
receipt check; a missing, unknown or mistyped field is refused naming it,
by the kernel's constructors and by userspace on receipt; the schemas and
what userspace implements agree."""
import ctypes
import errno
import re

import pytest

from common import ops, protocol
from common.ops import OpError
from services.userspace import platform, tracee

REGS = {name: i << 40 for i, name in enumerate(ops.REGS)}
MM = {name: 0x400000 + (i << 12) for i, name in enumerate(ops.MM_FIELDS)}
# One op of each type as the kernel builds it, at the edges of what fields may hold.
SAMPLES = {
    "exec_stub": ops.ExecStub(),
    "mmap": ops.Mmap(addr=0x400000, length=0x2000, prot=5, flags=0x12,
                     path="pagecache/62-12-1700000000.5-8192", offset=0x1000),
    "munmap": ops.Munmap(addr=ops.U64_MAX - 4095, length=4096),
    "mprotect": ops.Mprotect(addr=0, length=0, prot=ops.U64_MAX),
    "poke": ops.Poke(addr=0x7ffc0000, data=bytes(ops.POKE_MAX)),
    "set_mm": ops.SetMm(**MM),
    "set_regs": ops.SetRegs(rip=0x401000, rsp=0x7ffc0000),
    "clone": ops.Clone(task=ops.TID_MAX, flags=0x1200011, stack=0, ctid=0, tls=0, settid=0),
    "get_context": ops.GetContext(),
    "set_context": ops.SetContext(regs=REGS, xstate=bytes(ops.XSTATE_MAX)),
}


def through_the_wire(batch: list) -> list:
    """A batch as userspace receives it in an ops message."""
    raw = protocol.encode("ops", 7, "g/kernel", {"task": 1, "ops": batch, "reply": True,
                                                 "value": 0})
    return protocol.decode(raw)["ops"]


def test_every_op_type_has_a_sample_here():
    assert set(SAMPLES) == set(ops.TYPES)


@pytest.mark.parametrize("name", sorted(ops.TYPES))
def test_each_op_round_trips_through_the_wire_and_the_receipt_check(name):
    sent = SAMPLES[name]
    received, = through_the_wire([sent])
    assert received == sent and ops.check(received) == name


def test_optional_fields_are_filled_in_and_travel():
    op = ops.Mmap(addr=0x10000, length=4096, prot=3, flags=0x22, offset=0)
    assert op["path"] is None and op["write"] is False
    assert ops.SetContext(regs=REGS)["xstate"] is None
    assert [ops.check(o) for o in through_the_wire([op])] == ["mmap"]


# --- the kernel's side: the constructors ---------------------------------------------

def fields_of(name: str) -> dict:
    return {k: v for k, v in SAMPLES[name].items() if k != "op"}


@pytest.mark.parametrize("name, field", [(t.name, f) for t in ops.TYPES.values()
                                         for f in t.fields if f not in t.defaults])
def test_a_constructor_refuses_a_missing_field_naming_it(name, field):
    given = fields_of(name)
    del given[field]
    with pytest.raises(OpError, match=f"^{name}: missing field '{field}'$"):
        ops.TYPES[name](**given)


@pytest.mark.parametrize("name", sorted(ops.TYPES))
def test_a_constructor_refuses_an_unknown_field_naming_it(name):
    with pytest.raises(OpError, match=f"^{name}: unknown field 'colour'$"):
        ops.TYPES[name](**fields_of(name), colour=1)


def test_a_misspelt_field_is_named_with_the_one_it_stands_for():
    with pytest.raises(OpError, match="^munmap: missing field 'length', unknown field 'lenght'$"):
        ops.Munmap(addr=0, lenght=4096)


WRONG = [  # a field of each kind, and values it may not hold
    ("mmap", "addr", [-1, 1 << 64, True, "4096", 4096.0, None]),
    ("mmap", "path", ["pagecache/../../etc/passwd", "/etc/passwd", "stub", b"pagecache/x", 0,
                      "pagecache/", "shared/" + "x" * 249]),
    ("mmap", "write", [1, 0, None, "yes"]),
    ("poke", "data", [bytes(ops.POKE_MAX + 1), bytearray(b"x"), "x", None]),
    ("clone", "task", [0, -1, 1 << 31, True, "2"]),
    ("set_context", "regs", [{**REGS, "rax": -1}, {**REGS, "rax": 1 << 64},
                             {**REGS, "rax": True}, {k: REGS[k] for k in ops.REGS[1:]},
                             {**REGS, "eip": 0}, list(REGS.values()), None]),
    ("set_context", "xstate", [bytes(ops.XSTATE_MAX + 1), "", 0]),
]


@pytest.mark.parametrize("name, field, value",
                         [(n, f, v) for n, f, values in WRONG for v in values])
def test_a_constructor_refuses_a_mistyped_field_naming_it(name, field, value):
    with pytest.raises(OpError, match=f"^{name}: field '{field}' must be "):
        ops.TYPES[name](**{**fields_of(name), field: value})


def test_every_field_of_every_type_refuses_a_string():
    """No kind takes a str but a page-cache name, and "x" is not one."""
    for t in ops.TYPES.values():
        for field in t.fields:
            with pytest.raises(OpError, match=f"^{t.name}: field '{field}' must be "):
                t(**{**fields_of(t.name), field: "x"})


@pytest.mark.parametrize("regs, said", [
    ({**REGS, "rip": -2}, "not rip=-2"),
    ({k: REGS[k] for k in ops.REGS if k != "gs"}, "not a map missing ['gs']"),
    ({**REGS, "eip": 0}, "not a map with unknown ['eip']"),
])
def test_a_refused_register_map_says_which_register(regs, said):
    with pytest.raises(OpError, match=rf"^set_context: field 'regs' must be .*, {re.escape(said)}$"):
        ops.SetContext(regs=regs)


def test_a_long_value_is_only_measured_in_the_error():
    with pytest.raises(OpError, match=rf"not {ops.POKE_MAX + 1} bytes$"):
        ops.Poke(addr=0, data=bytes(ops.POKE_MAX + 1))
    with pytest.raises(OpError, match=r"not a str of length 4096$"):
        ops.Mmap(addr=0, length=1, prot=0, flags=0, offset=0, path="pagecache/" + "x" * 4086)
    ops.Mmap(addr=0, length=1, prot=0, flags=0, offset=0, path="shared/" + "x" * 248)


# --- userspace's side: the check on receipt -----------------------------------------

class NoTracee:
    """A refused op must not touch the tracee: anything but its task number fails."""
    task = 3

    def __getattr__(self, name):
        raise AssertionError(f"a refused op used the tracee's {name}")


def run_refused(op) -> tuple[list, list]:
    refusals = []
    ctx = platform.Context(adopt=None, wait_group=None, took_over=None, gone=None,
                           refused=lambda t, index, why: refusals.append((t.task, index, why)))
    results, regs_set = platform.run_ops(NoTracee(), through_the_wire([op]), ctx)
    assert not regs_set
    return results, refusals


def without(op: dict, field: str) -> dict:
    return {k: v for k, v in op.items() if k != field}


@pytest.mark.parametrize("op, reason", [
    (without(SAMPLES["mmap"], "write"), "mmap: missing field 'write'"),
    (without(SAMPLES["set_regs"], "rsp"), "set_regs: missing field 'rsp'"),
    (without(SAMPLES["set_context"], "xstate"), "set_context: missing field 'xstate'"),
    ({**SAMPLES["poke"], "len": 5}, "poke: unknown field 'len'"),
    ({**SAMPLES["exec_stub"], "path": "/bin/sh"}, "exec_stub: unknown field 'path'"),
    ({**SAMPLES["munmap"], "addr": -4096}, "munmap: field 'addr' must be an integer in [0, 2**64)"),
    ({**SAMPLES["mmap"], "path": "pagecache/../x"}, "mmap: field 'path' must be nil or a page-cache"),
    ({**SAMPLES["clone"], "task": "2"}, "clone: field 'task' must be a guest tid"),
    ({**SAMPLES["set_context"], "regs": {**REGS, "rip": "0"}}, "set_context: field 'regs' must be"),
    ({"op": "fork", "task": 2}, "unknown op 'fork'"),
    ({"task": 2}, "unknown op None"),
    ([1, 2], "not an op: [1, 2]"),
])
def test_userspace_refuses_a_bad_op_on_receipt_and_says_why(op, reason):
    """The op fails with EINVAL without running (the kernel sees that op's
    failure), and the kernel is told the reason (op_refused)."""
    results, refusals = run_refused(op)
    assert results == [-errno.EINVAL]
    (task, index, why), = refusals
    assert (task, index) == (3, 0) and why.startswith(reason), why


def test_a_refusal_stops_the_batch_where_it_is():
    refusals = []
    ctx = platform.Context(None, None, None, None, lambda t, i, why: refusals.append(i))
    batch = through_the_wire([SAMPLES["get_context"], {"op": "munmap", "addr": 0}])
    ran = []

    class Parked(NoTracee):
        def context(self):
            ran.append("get_context")
            return {"regs": REGS, "xstate": b""}

    results, _ = platform.run_ops(Parked(), batch, ctx)
    assert ran == ["get_context"] and results[1:] == [-errno.EINVAL] and refusals == [1]


def test_an_op_refused_is_a_message_the_kernel_takes():
    body = {"task": 3, "index": 0, "reason": "munmap: missing field 'length'"}
    assert protocol.decode(protocol.encode("op_refused", 1, "g/userspace", body)).body == body


# --- the schemas and userspace agree ------------------------------------------------

def test_every_op_userspace_runs_has_a_schema_and_every_schema_is_run():
    assert set(platform._OPS) == set(ops.TYPES) == set(protocol.OPS)


def test_the_schemas_registers_and_mm_map_are_the_hosts():
    from ptrace.binding.linux_struct import user_regs_struct
    assert ops.REGS == tracee.REGS == tuple(name for name, _ in user_regs_struct._fields_)
    assert ctypes.sizeof(tracee.user_regs_struct) == ctypes.sizeof(user_regs_struct)
    assert platform._MM_MAP.size == 8 * len(ops.MM_FIELDS) + 16   # struct prctl_mm_map
