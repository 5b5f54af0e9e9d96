"""Run a command inside the kernel-side part of a unit's sandbox, without systemd as PID 1.

``python confine.py UNIT -- COMMAND ...`` reads the unit's SystemCallFilter=,
SystemCallErrorNumber=, SystemCallArchitectures=native, RestrictAddressFamilies=,
MemoryDenyWriteExecute=, NoNewPrivileges=, CapabilityBoundingSet= (empty) and UMask=, builds
the seccomp filter systemd would build from them (x86_64 only; the syscall sets come from
this machine's ``systemd-analyze syscall-filter``), and execs COMMAND under it.

The tests use it to run the real daemon, with inotify and ffmpeg child processes, inside the
unit's limits where systemd itself cannot run. Namespaces (ProtectSystem=, PrivateTmp=, ...)
are not emulated.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
RET = 0x06  # BPF_RET | BPF_K
NR, ARCH = 0, 4


def arg(i: int) -> int:
    """Offset of the low 32 bits of syscall argument `i` in struct seccomp_data."""
    return 16 + 8 * i


def supported() -> str | None:
    """Why confinement cannot work here, or None."""
    if os.uname().machine != "x86_64":
        return f"seccomp emulation is written for x86_64, not {os.uname().machine}"
    if not UNISTD.exists():
        return f"{UNISTD} (linux-libc-dev) is missing: no syscall numbers"
    return None


def unit_settings(unit: Path) -> dict[str, list[str]]:
    """[Service] assignments, each key's values in order (an empty one resets)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            if value == "":
                settings[key] = []
            else:
                settings.setdefault(key, []).append(value)
    return settings


def syscall_sets() -> dict[str, list[str]]:
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sets: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = sets.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return sets


def expand(names: list[str], sets: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(sets[name], sets)
        else:
            out.add(name)
    return out


def syscall_numbers() -> dict[str, int]:
    pattern = re.compile(r"#define __NR_(\w+) (\d+)")
    return {m.group(1): int(m.group(2)) for m in pattern.finditer(UNISTD.read_text())}


def allowed_syscalls(filters: list[str]) -> set[str]:
    """systemd's rule: the first SystemCallFilter= sets the list, later ``~`` ones remove."""
    sets = syscall_sets()
    allowed: set[str] = set()
    for i, value in enumerate(filters):
        deny = value.startswith("~")
        names = value.removeprefix("~").split()
        if i == 0 and deny:
            raise SystemExit("confine.py: a deny-list first is not emulated")
        if deny:
            allowed -= expand(names, sets)
        else:
            allowed |= expand(names, sets)
    return allowed


def build_filter(settings: dict[str, list[str]]) -> list[tuple[int, int, int, int]]:
    """The BPF program, as (code, jt, jf, k) tuples."""
    err = getattr(errno, (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1])
    deny = (RET, 0, 0, RET_ERRNO | err)
    prog = [(LD_ABS, 0, 0, ARCH), (JEQ, 1, 0, AUDIT_ARCH_X86_64), deny, (LD_ABS, 0, 0, NR)]
    prog += [(JGE, 0, 1, X32_SYSCALL_BIT), deny]  # SystemCallArchitectures=native
    numbers = syscall_numbers()

    def argument_check(nr: int, index: int, mask: int, value: int, error: int) -> None:
        # nr matches and (arg & mask) == value -> error; otherwise reload nr and go on
        prog.extend(
            [
                (JEQ, 0, 5, nr),
                (LD_ABS, 0, 0, arg(index)),
                (AND, 0, 0, mask),
                (JEQ, 0, 1, value),
                (RET, 0, 0, RET_ERRNO | error),
                (LD_ABS, 0, 0, NR),
            ]
        )

    if (settings.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes":
        prot_wx, prot_x, shm_exec = 0x6, 0x4, 0o100000
        argument_check(numbers["mmap"], 2, prot_wx, prot_wx, errno.EPERM)
        argument_check(numbers["mprotect"], 2, prot_x, prot_x, errno.EPERM)
        argument_check(numbers["pkey_mprotect"], 2, prot_x, prot_x, errno.EPERM)
        argument_check(numbers["shmat"], 2, shm_exec, shm_exec, errno.EPERM)
    families = " ".join(settings.get("RestrictAddressFamilies", [])).split()
    if families:
        codes = [int(getattr(socket, f)) for f in families]
        n = len(codes)
        prog.append((JEQ, 0, n + 3, numbers["socket"]))
        prog.append((LD_ABS, 0, 0, arg(0)))
        prog.extend((JEQ, n - i, 0, code) for i, code in enumerate(codes))
        prog.append((RET, 0, 0, RET_ERRNO | errno.EAFNOSUPPORT))
        prog.append((LD_ABS, 0, 0, NR))
    filters = settings.get("SystemCallFilter", [])
    if not filters:
        prog.append((RET, 0, 0, RET_ALLOW))
        return prog
    for name in sorted(allowed_syscalls(filters)):
        if name in numbers:  # names of other architectures (mmap2, ...) do not apply
            prog += [(JEQ, 0, 1, numbers[name]), (RET, 0, 0, RET_ALLOW)]
    prog.append(deny)
    return prog


def confine(unit: Path) -> None:
    """Apply the unit's limits to this process (inherited by what it execs)."""
    settings = unit_settings(unit)
    libc = ctypes.CDLL(None, use_errno=True)
    if settings.get("CapabilityBoundingSet") == []:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        for cap in range(last + 1):
            libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EPERM/EINVAL when not held
    if settings.get("UMask"):
        os.umask(int(settings["UMask"][-1], 8))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, needed for seccomp anyway
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    prog = build_filter(settings)
    raw = b"".join(struct.pack("HBBI", *insn) for insn in prog)
    buffer = ctypes.create_string_buffer(raw)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.addressof(buffer))
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, MODE_FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")


def main(argv: list[str]) -> None:
    if "--" not in argv or argv.index("--") != 1:
        raise SystemExit("usage: confine.py UNIT -- COMMAND [ARG ...]")
    unit, command = Path(argv[0]), argv[2:]
    confine(unit)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
