"""Icarus-protocol sticks (Block Erupter, Antminer U1-U3, Icarus) over any Transport.

Work packet, 64 bytes (host -> stick):
  offset 0   midstate, state words h7..h0, each big-endian
        32   20 zero bytes
        52   header[72:76] (nbits) | 56 header[68:72] (ntime) | 60 header[64:68] (merkle tail)
Reply: header bytes 76..79 (4 bytes; U1-U3 add a work-id byte). The stick walks
the nonce as a big-endian counter of those bytes, so a reply's counter value
over the time since the work was sent is the stick's hashrate; that estimate
sets when the next work goes out, before the 2^32 range runs dry (the stick
falls silent then).
"""
from __future__ import annotations

import logging
import statistics
import time
from collections import OrderedDict, deque
from typing import Any

from miner.engine.backend import DeviceContext, Work
from miner.engine.job import NonceCheck
from miner.errors import DeviceError
from miner.sha256 import midstate

from miner.drivers.base import ASICDevice, silence_limit
from miner.drivers.chips import IcarusFacts, facts_for
from miner.drivers.transport import Transport

log = logging.getLogger(__name__)

# Golden work (block 171874): the work packet and the 4 reply bytes every healthy stick returns.
GOLDEN_WORK = bytes.fromhex(
    "4679ba4ec99876bf4bfe086082b400254df6c356451471139a3afa71e48f544a"
    "000000000000000000000000000000000000000087320b1a1426674f2fa722ce")
GOLDEN_REPLY = bytes.fromhex("000187a2")
RANGE = 1 << 32
SWITCH_AT = 0.8           # send new work after this fraction of the full-range time


def work_packet(header: bytes) -> bytes:
    state = midstate(header)
    mid = b"".join(w.to_bytes(4, "big") for w in reversed(state))
    return mid + bytes(20) + header[72:76] + header[68:72] + header[64:68]


def parse_work_packet(packet: bytes) -> tuple[tuple[int, ...], bytes]:
    """(midstate words h0..h7, header bytes 64..75) of a 64-byte work packet."""
    mid = tuple(int.from_bytes(packet[i:i + 4], "big") for i in range(28, -1, -4))
    return mid, packet[60:64] + packet[56:60] + packet[52:56]


class IcarusDevice(ASICDevice):
    def __init__(self, name: str, transport: Transport, facts: IcarusFacts,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(name, transport, options)
        self.facts = facts
        self.model = facts.model
        self.estimate = float(self.options.get("hashrate", facts.hashrate))
        self._samples: deque[float] = deque(maxlen=15)
        self.silence_s = float(self.options["silence"]) if "silence" in self.options else None
        self.works_sent = 0
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._last_place: tuple | None = None

    def init_hw(self) -> None:
        self.transport.flush_input()
        self._verified = False
        self.golden_check()
        self._verified = True

    def selftest(self) -> None:
        """The engine's known-answer hook: open() already ran the golden work; repeat it only if not."""
        if not getattr(self, "_verified", False):
            self.golden_check()
            self._verified = True

    def golden_check(self) -> None:
        """Golden work must come back with its known nonce (an emulator in test mode may send
        easier nonces first; the golden one still has to arrive)."""
        self.transport.write(GOLDEN_WORK)
        timeout = float(self.options.get("golden_timeout", 3.0))
        deadline = time.monotonic() + timeout
        resend_at = time.monotonic() + timeout / 2
        buf = bytearray()
        heard = False
        while time.monotonic() < deadline:
            data = self.transport.read(self.facts.reply_len, 0.1)
            heard = heard or bool(data)
            buf += data
            if not heard and time.monotonic() > resend_at:
                # Nothing at all yet: the packet may have been lost while the stick settled.
                self.transport.write(GOLDEN_WORK)
                resend_at = deadline
            while len(buf) >= self.facts.reply_len:
                if bytes(buf[:4]) == GOLDEN_REPLY:
                    self.transport.write(bytes(64))  # park the stick on empty work until real work comes
                    time.sleep(0.05)
                    self.transport.flush_input()
                    return
                del buf[:1]  # slide: the golden reply may sit at any offset after noise
        raise DeviceError(f"{self.name}: no golden nonce from the golden work (not an Icarus device?)")

    # -- mining -----------------------------------------------------------
    def range_time(self) -> float:
        return RANGE / max(self.estimate, 1.0)

    def mine(self, ctx: DeviceContext) -> None:
        buf = bytearray()
        cur: Work | None = None
        prev: Work | None = None
        sent_at = switched_at = 0.0
        last_nonce = time.monotonic()
        L = self.facts.reply_len
        while not ctx.stopping:
            now = time.monotonic()
            if cur is None or ctx.generation != cur.generation or now - sent_at >= SWITCH_AT * self.range_time():
                nxt = ctx.next_work(timeout=0.5)
                if nxt is None:
                    continue
                if cur is None:
                    last_nonce = now
                prev, cur = cur, nxt
                self.transport.write(work_packet(cur.header))
                self.works_sent += 1
                sent_at = switched_at = time.monotonic()
            data = self.transport.read(64, 0.05)
            if data:
                buf += data
                last_nonce = time.monotonic()
            # Replies are fixed-size and unframed: after noise, find the alignment at which
            # the bytes form a valid nonce again.
            while len(buf) >= L:
                # Each candidate (work, nonce) is hashed once; that check goes on to report().
                chosen, check, cur_check = self._place(buf[:4], cur, prev if time.monotonic() - switched_at < 1.0
                                                       else None)
                if chosen is None:
                    # A shift by whole replies would hide a wrong nonce followed by a good one:
                    # only offsets inside a reply count as noise.
                    shift = next((k for k in range(1, min(len(buf) - L, 64) + 1) if k % L and
                                  self._place(buf[k:k + 4], cur, prev)[0] is not None), None)
                    if shift is not None:
                        self.count("garbage_bytes", shift)
                        del buf[:shift]
                        continue
                    if len(buf) < 2 * L - 1 and not data:
                        # Not enough bytes yet to tell noise from a bad nonce; wait briefly.
                        if time.monotonic() - last_nonce < 0.1:
                            break
                    chosen, check = cur, cur_check  # a wrong nonce: reported, so it counts as a hardware error
                counter = int.from_bytes(buf[:4], "big")
                nonce = int.from_bytes(buf[:4], "little")
                del buf[:L]
                if chosen is cur and check.meets(self.claimed_target):
                    self._sample(counter, time.monotonic() - sent_at)
                key = (chosen.generation, chosen.extranonce2, nonce)
                if key in self._seen:
                    self.count("duplicates")  # the stick repeated itself; one report is enough
                    continue
                self._seen[key] = None
                if len(self._seen) > 1024:
                    self._seen.popitem(last=False)
                self.report(ctx, chosen, nonce, check=check)
            limit = self.silence_s or silence_limit(self.estimate, self.ticket_diff)
            if time.monotonic() - last_nonce > limit:
                self.count("silences")
                log.warning("%s: silent for %.1f s; re-checking with golden work", self.name, limit)
                self.golden_check()
                cur, last_nonce = None, time.monotonic()

    def _place(self, raw: bytes, cur: Work, prev: Work | None
               ) -> tuple[Work | None, NonceCheck | None, NonceCheck]:
        """(the work a reply's nonce is valid for, or None; that nonce's check; its check against cur).

        The last answer is kept: a wrong nonce waiting for more bytes is not hashed again."""
        raw = bytes(raw)
        last = self._last_place
        if last is not None and last[0] == raw and last[1] is cur and last[2] is prev:
            return last[3]
        placed = self._place_new(int.from_bytes(raw, "little"), cur, prev)
        self._last_place = (raw, cur, prev, placed)
        return placed

    def _place_new(self, nonce: int, cur: Work, prev: Work | None
                   ) -> tuple[Work | None, NonceCheck | None, NonceCheck]:
        on_cur = self.check(cur, nonce)
        if on_cur.meets(self.claimed_target):
            return cur, on_cur, on_cur
        if prev is not None:
            on_prev = self.check(prev, nonce)
            if on_prev.meets(self.claimed_target):
                return prev, on_prev, on_cur  # in flight when the new work went out
        return None, None, on_cur

    def _sample(self, counter: int, elapsed: float) -> None:
        # Full-range timing: the counter reached ``counter`` after ``elapsed`` seconds.
        if elapsed > 0.05 and counter > 1 << 16:
            self._samples.append(counter / elapsed)
            if len(self._samples) >= 3:
                self.estimate = statistics.median(self._samples)

    def describe(self) -> dict[str, Any]:
        return {"chips": 1, "nominal_hashrate": self.estimate, "watts": self.facts.watts,
                "range_time_s": self.range_time(), "works_sent": self.works_sent}


def create(key: str, target: str, options: dict[str, Any], make_transport) -> IcarusDevice:
    facts = facts_for(key)
    transport = make_transport(target, int(options.get("baud", facts.baud)))
    return IcarusDevice(f"{key}:{target}", transport, facts, options)
