"""Emulated boards: an Icarus stick and a BM13xx chain, speaking the real wire formats.

Both compute real double-SHA-256: full-header chips through the C core
(miner.core.scan), midstate devices (Icarus, BM1397) through drivers/emu/midstate.py,
since a midstate is all they are given. In test mode (``diff`` below 1) they
report nonces at that difficulty so a test sees shares within seconds.
"""
from __future__ import annotations

import logging
import threading
import time

from miner import core
from miner.engine.difficulty import target_from_difficulty
from miner.errors import ProtocolError

from miner.drivers import bm13xx_proto as P
from miner.drivers.chips import ChipFacts, IcarusFacts
from miner.drivers.emu import midstate as MS
from miner.drivers.emu.emulator import EmulatedDevice, Faults
from miner.engine.job import spread_bits
from miner.drivers.icarus import GOLDEN_WORK, parse_work_packet

log = logging.getLogger(__name__)

ICARUS_BATCH = 1 << 14
BM_SLICE = 1 << 13          # nonces per chip per scan step
BM_VERSION_WINDOW = 16      # versions walked per step before the nonce window moves on


class EmulatedIcarus(EmulatedDevice):
    def __init__(self, facts: IcarusFacts, *, hashrate: float | None = None, diff: float = 1.0,
                 faults: Faults | None = None) -> None:
        super().__init__(hashrate, faults)
        self.facts = facts
        self.target = target_from_difficulty(diff)
        self._buf = bytearray()
        self._last_rx = 0.0
        self._work: tuple | None = None
        self._thread = threading.Thread(target=self._hash_loop, daemon=True, name="emu-icarus")
        self._thread.start()

    def hashrate(self) -> float:
        return self.hashrate_override or self.facts.hashrate

    def feed(self, data: bytes) -> None:
        now = time.monotonic()
        if now - self._last_rx > 1.0:
            self._buf.clear()  # a partial packet followed by a long pause is dropped: resynchronises
        self._last_rx = now
        self._buf += data
        while len(self._buf) >= 64:
            packet = bytes(self._buf[:64])
            del self._buf[:64]
            if packet[:32] == bytes(32):
                self.new_job(0)  # empty work parks the stick
                self._work = None
                continue
            mid, tail = parse_work_packet(packet)
            if packet == GOLDEN_WORK:
                self.silent = False  # the host's re-check wakes a stick that went silent (fault)
            gen, t0 = self.new_job(1 << 32)
            self._work = (gen, t0, mid, tail)

    def _hash_loop(self) -> None:
        gen = -1
        while not self.closed:
            work = self._work
            if work is None or work[0] == gen:
                self.wait_job_change(gen if work is None else work[0], 0.2)
                continue
            gen, t0, mid, tail = work
            rate = self.hashrate()
            for start in range(0, 1 << 32, ICARUS_BATCH):
                if not self.current(gen):
                    break
                for counter in MS.scan_midstate(mid, tail, range(start, start + ICARUS_BATCH), self.target):
                    if not self.wait_until(t0 + counter / rate, gen):
                        break
                    word = counter.to_bytes(4, "big")

                    def frame(wrong: bool, bad: bool, word=word) -> bytes:
                        raw = bytes((word[0] ^ 0x5A,)) + word[1:] if wrong else word
                        return raw + (b"\x00" if self.facts.reply_len == 5 else b"")
                    self.emit(frame, crc_capable=False)


class EmulatedBM13xx(EmulatedDevice):
    """A chain of ``chips`` chips: registers, addressing, PLL, ticket and version masks, jobs."""

    def __init__(self, facts: ChipFacts, chips: int = 1, *, hashrate: float | None = None,
                 diff: float | None = None, faults: Faults | None = None) -> None:
        super().__init__(hashrate, faults)
        self.facts = facts
        self.n = chips
        self.test_diff = diff
        self.addresses: list[int | None] = [None] * chips
        self.freq_mhz = 50.0
        self.ticket_diff = 1
        self.version_mask = 0
        self.rx_bad_crc = 0
        self.freq_history: list[float] = []
        self._buf = bytearray()
        self._job: tuple | None = None
        self.job_format = P.job_format(facts)
        self._thread = threading.Thread(target=self._hash_loop, daemon=True, name="emu-bm13xx")
        self._thread.start()

    def hashrate(self) -> float:
        return self.hashrate_override or self.facts.hashrate(self.freq_mhz, self.n)

    def target(self) -> int:
        return target_from_difficulty(self.test_diff if self.test_diff is not None else self.ticket_diff)

    # -- host -> chain --------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            i = self._buf.find(P.PREAMBLE_TX)
            if i < 0:
                del self._buf[:max(0, len(self._buf) - 1)]
                return
            del self._buf[:i]
            if len(self._buf) < 4:
                return
            length = self._buf[3]
            if len(self._buf) < length + 2:
                return
            frame = bytes(self._buf[:length + 2])
            try:
                hdr, payload = P.parse_tx(frame)
            except ProtocolError:
                self.rx_bad_crc += 1  # chips ignore a frame with a bad CRC
                del self._buf[:2]
                continue
            del self._buf[:length + 2]
            self._command(hdr, payload)

    def _chips_for(self, addr: int | None) -> list[int]:
        if addr is None:
            return list(range(self.n))
        return [i for i, a in enumerate(self.addresses) if a == addr]

    def _command(self, hdr: int, payload: bytes) -> None:
        if hdr == P.JOB:
            self._new_job(payload)
            return
        broadcast = bool(hdr & P.BROADCAST)
        op = hdr & 0x0F
        if op == 0:  # set address: the first chip without one takes it
            for i, a in enumerate(self.addresses):
                if a is None:
                    self.addresses[i] = payload[0]
                    break
        elif op == 3:  # chain inactive: chips forget their addresses
            self.addresses = [None] * self.n
        elif op == 2:
            reg = payload[1]
            if reg == P.REG_CHIP_ID:
                self.silent = False  # a reset/enumeration brings a silent chain back
            for i in self._chips_for(None if broadcast else payload[0]):
                value = self._read(reg)
                self.send(P.build_reply(False, value.to_bytes(4, "big"), self.addresses[i] or 0, reg, 0,
                                        self.facts.reply_len))
        elif op == 1:
            self._write(payload[1], payload[2:6])

    def _read(self, reg: int) -> int:
        if reg == P.REG_CHIP_ID:
            return self.facts.chip_id << 16
        if reg == P.REG_VERSION_MASK:
            return int.from_bytes(P.version_mask_value(self.version_mask), "big")
        return 0

    def _write(self, reg: int, value: bytes) -> None:
        if reg == P.REG_PLL:
            self.freq_mhz = P.PLL.from_value(value).mhz
            self.freq_history.append(self.freq_mhz)
        elif reg == P.REG_TICKET_MASK:
            self.ticket_diff = P.ticket_diff_from_value(value)
        elif reg == P.REG_VERSION_MASK:
            self.version_mask = P.version_mask_from_value(value)

    def _new_job(self, payload: bytes) -> None:
        mask = self.version_mask if self.facts.rolls_versions else 0
        job_id, header, mids, tail = self.job_format.parse_payload(payload)
        versions = len(mids) if mids is not None else 1 << bin(mask).count("1")
        gen, t0 = self.new_job((1 << 32) * max(versions, 1))
        self._job = (gen, t0, job_id, header, mids, tail, 0 if mids is not None else mask)

    # -- chain -> host ---------------------------------------------------------
    def _hash_loop(self) -> None:
        gen = -1
        while not self.closed:
            job = self._job
            if job is None or job[0] == gen:
                self.wait_job_change(gen if job is None else job[0], 0.2)
                continue
            gen = job[0]
            try:
                self._walk(job)
            except Exception:  # a bug here must not kill the emulator silently
                log.exception("emulator hashing failed")

    def _walk(self, job: tuple) -> None:
        gen, t0, job_id, header, mids, tail, mask = job
        rate, target = self.hashrate(), self.target()
        n_versions = len(mids) if mids else (1 << bin(mask).count("1"))
        slice_bits = 32 - (self.n - 1).bit_length() if self.n > 1 else 32
        step = 256 // self.n
        pos = 0  # hashes walked so far, chip-parallel: n chips * BM_SLICE per step
        for window in range(0, 1 << slice_bits, BM_SLICE):
            for vbase in range(0, n_versions, BM_VERSION_WINDOW):
                for k in range(vbase, min(n_versions, vbase + BM_VERSION_WINDOW)):
                    for chip in range(self.n):
                        if not self.current(gen):
                            return
                        start = ((chip * step) << 24) + window
                        for nonce in self._scan(header, mids, tail, mask, k, start, target):
                            if not self.wait_until(t0 + (pos + nonce - start) / rate, gen):
                                return
                            self._reply(job_id, nonce, k, mask, chip)
                        pos += BM_SLICE
            if slice_bits < 13:
                return

    def _scan(self, header, mids, tail, mask, k, start, target) -> list[int]:
        if mids is not None:
            words = [int.from_bytes(n.to_bytes(4, "little"), "big") for n in range(start, start + BM_SLICE)]
            hits = MS.scan_midstate(mids[k], tail, words, target)
            return sorted(int.from_bytes(w.to_bytes(4, "big"), "little") for w in hits)
        v = int.from_bytes(header[0:4], "little") | spread_bits(k, mask)
        return core.scan(v.to_bytes(4, "little") + header[4:], start, BM_SLICE, target)

    def _reply(self, job_id: int, nonce: int, k: int, mask: int, chip: int) -> None:
        byte6, byte7, ver = self.job_format.reply_fields(job_id, k, mask, chip)

        def frame(wrong: bool, bad: bool) -> bytes:
            n = nonce ^ 0x00A5_0000 if wrong else nonce
            f = bytearray(P.build_reply(True, n.to_bytes(4, "little"), byte6, byte7, ver, self.facts.reply_len))
            if bad:
                f[-1] ^= 0x01
            return bytes(f)
        self.emit(frame, crc_capable=True)
