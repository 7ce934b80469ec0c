"""BM13xx chain driver (BM1397, BM1366, BM1368, BM1370) over any Transport.

Bring-up, in the order the chips need it:
  1. read-all register 0: every chip answers with its chip id; count them;
  2. chain-inactive, then one set-address per chip, spaced 256/n apart;
  3. ticket mask (difficulty the chips report at) and, for rolling chips, the version mask;
  4. PLL ramp from 50 MHz to the target clock in small steps (a jump can brown out the board).
Mining: a new job at the chip's interval or at once on a new job generation;
job ids step by 8 (4 on the BM1397) so a reply names its job in the high bits;
every reply is CRC-checked, de-duplicated and re-hashed on the host.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

from miner.engine.backend import DeviceContext, Work
from miner.engine.difficulty import target_from_difficulty
from miner.errors import DeviceError, DeviceGone

from miner.drivers import bm13xx_proto as P
from miner.drivers.base import ASICDevice, silence_limit
from miner.drivers.chips import ChipFacts
from miner.drivers.transport import Transport

log = logging.getLogger(__name__)

RAMP_START_MHZ = 50.0
RAMP_STEP_MHZ = 25.0
JOB_HISTORY = 16          # jobs whose late replies are still accepted
DUP_WINDOW = 4096         # recent (job, nonce, version) keys kept for the duplicate filter


class BM13xxDevice(ASICDevice):
    """A chain of identical BM13xx chips behind one UART."""

    def __init__(self, name: str, transport: Transport, facts: ChipFacts,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(name, transport, options)
        self.facts = facts
        self.job_format = P.job_format(facts)  # the family's job layout and reply decoding
        self.model = facts.model
        self.freq_mhz = float(self.options.get("freq", facts.default_freq_mhz))
        self.expect_chips = int(self.options["chips"]) if "chips" in self.options else None
        self.ramp_delay = float(self.options.get("ramp_delay", 0.01))
        self.job_interval = float(self.options.get("job_interval", facts.job_interval_s))
        self.fixed_interval = "job_interval" in self.options  # given explicitly: used as is
        self.silence_s = float(self.options["silence"]) if "silence" in self.options else None
        if "diff" not in self.options:
            self.ticket_diff = float(facts.default_ticket_diff)
        if self.ticket_diff >= 1:
            # The register holds a power of two; claim exactly what the chips are told.
            self.ticket_diff = float(P.ticket_diff_from_value(P.ticket_mask_value(int(self.ticket_diff))))
        # Below 1 only an emulator in test mode (--diff) can report; the host still re-checks every nonce.
        self.claimed_target = target_from_difficulty(self.ticket_diff)
        self.chips = 0
        self._version_mask: int | None = None
        self._job_id = 0
        self._jobs: OrderedDict[int, tuple[Work, tuple[int, ...]]] = OrderedDict()
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._reader = P.ReplyReader(facts.reply_len)
        self.jobs_sent = 0

    # -- bring-up ---------------------------------------------------------
    def init_hw(self) -> None:
        t = self.transport
        t.flush_input()
        self._reader = P.ReplyReader(self.facts.reply_len)
        self._version_mask = None
        t.write(P.read_reg(P.REG_CHIP_ID))
        ids = self._collect_register_replies(P.REG_CHIP_ID, quiet=0.3, limit=2.0)
        if not ids:
            raise DeviceGone(f"{self.name}: no {self.facts.model} answered the chip-id read")
        wrong = {v >> 16 for v in ids if v >> 16 != self.facts.chip_id}
        if wrong:
            raise DeviceError(f"{self.name}: chain reports chip id(s) {', '.join(f'{w:04x}' for w in wrong)}, "
                              f"expected {self.facts.chip_id:04x} ({self.facts.model})")
        self.chips = len(ids)
        if self.expect_chips is not None and self.chips != self.expect_chips:
            log.warning("%s: %d chips answered, %d expected", self.name, self.chips, self.expect_chips)
        t.write(P.chain_inactive())
        step = 256 // self.chips
        for i in range(self.chips):
            t.write(P.set_address(i * step))
        t.write(P.write_reg(P.REG_TICKET_MASK, P.ticket_mask_value(max(1, int(self.ticket_diff)))))
        self._ramp(self.freq_mhz)
        log.info("%s: %d x %s at %.1f MHz, ticket difficulty %g", self.name, self.chips, self.facts.model,
                 self.freq_mhz, self.ticket_diff)

    def _collect_register_replies(self, reg: int, quiet: float, limit: float) -> list[int]:
        values: list[int] = []
        deadline = time.monotonic() + limit
        last = None  # until the first reply, wait up to ``limit``; after it, until ``quiet`` passes
        while time.monotonic() < deadline and (last is None or time.monotonic() - last < quiet):
            data = self.transport.read(64, 0.05)
            if data:
                last = time.monotonic()
            for r in self._reader.feed(data):
                if not r.is_nonce and r.job_or_register == reg:
                    values.append(r.value)
        self._account_reader()
        return values

    def _ramp(self, target: float) -> None:
        f = min(RAMP_START_MHZ, target)
        while True:
            self.transport.write(P.write_reg(P.REG_PLL, P.pll_for(f).value()))
            if f >= target:
                break
            if self.ramp_delay:
                time.sleep(self.ramp_delay)
            f = min(target, f + RAMP_STEP_MHZ)
        self.freq_mhz = P.pll_for(target).mhz

    # -- mining -----------------------------------------------------------
    def nominal_hashrate(self) -> float:
        return self.facts.hashrate(self.freq_mhz, max(self.chips, 1))

    def interval_for(self, work: Work | None) -> float:
        """Seconds between jobs: the chip's usual interval, but at most half the time the chain
        needs to walk the whole job (2^32 nonces per version it may roll, per midstate), so a
        chain never runs dry even when the pool allows no version rolling."""
        if work is None or self.fixed_interval:
            return self.job_interval
        versions = self.job_format.versions_per_job(work.device_version_mask)
        # Never faster than the UART carries jobs (two frame times), or the 16 job ids would be
        # reused while replies for the older job are still on the wire.
        frame_bits = 10 * (6 + self.job_format.payload_len())
        floor = 2 * frame_bits / max(getattr(self.transport, "baud", 115200), 1)
        return max(floor, min(self.job_interval, 0.5 * (1 << 32) * versions / self.nominal_hashrate()))

    def _send(self, work: Work) -> None:
        mask = work.device_version_mask
        self._job_id = (self._job_id + self.job_format.id_step) % 128
        versions = self.job_format.versions(work.version, mask)
        if self.job_format.sets_version_mask:
            if self.facts.rolls_versions and not mask and self._version_mask is None:
                log.warning("%s: the pool allows no version rolling; a %s chain then walks a job in %.1f ms, "
                            "faster than %d baud can deliver jobs, so it will idle part of the time",
                            self.name, self.facts.model, 1000 * (1 << 32) / self.nominal_hashrate(),
                            getattr(self.transport, "baud", 115200))
            if mask != self._version_mask:
                self.transport.write(P.write_reg(P.REG_VERSION_MASK, P.version_mask_value(mask)))
                self._version_mask = mask
        payload = self.job_format.payload(self._job_id, work.header, versions)
        self._jobs[self._job_id] = (work, versions)
        self._jobs.move_to_end(self._job_id)
        while len(self._jobs) > JOB_HISTORY:
            self._jobs.popitem(last=False)
        self.transport.write(P.job_frame(payload))
        self.jobs_sent += 1

    def mine(self, ctx: DeviceContext) -> None:
        rolling = self.job_format.wants_rolling()
        quiet_limit = self.silence_s or silence_limit(self.nominal_hashrate(), self.ticket_diff)
        last_nonce = time.monotonic()
        work: Work | None = None
        sent_at = 0.0
        while not ctx.stopping:
            now = time.monotonic()
            interval = self.interval_for(work)
            if work is None or ctx.generation != work.generation or now - sent_at >= interval:
                nxt = ctx.next_work(timeout=0.5, version_rolling=rolling)
                if nxt is None:
                    continue
                if work is None:
                    last_nonce = now  # the silence clock starts with the first job
                work = nxt
                self._send(work)
                sent_at = time.monotonic()
            wait = min(0.05, max(0.0005, sent_at + self.interval_for(work) - time.monotonic()))
            data = self.transport.read(self.facts.reply_len * 16, wait)
            if data:
                for r in self._reader.feed(data):
                    if r.is_nonce:
                        last_nonce = time.monotonic()
                        self._handle_nonce(ctx, r)
                self._account_reader()
            if time.monotonic() - last_nonce > quiet_limit:
                self.count("silences")
                log.warning("%s: no nonce for %.1f s; re-initialising the chain", self.name, quiet_limit)
                self.init_hw()
                work, last_nonce = None, time.monotonic()

    def _account_reader(self) -> None:
        r = self._reader
        if r.garbage or r.bad_crc:
            self.count("garbage_bytes", r.garbage)
            self.count("crc_errors", r.bad_crc)
            r.garbage = r.bad_crc = 0

    def _handle_nonce(self, ctx: DeviceContext, r: P.Reply) -> None:
        job_id, version_index, rolled = self.job_format.reply_job(r)
        entry = self._jobs.get(job_id)
        if entry is None or version_index >= len(entry[1]):
            self.count("stale")
            return
        work, versions = entry
        version = versions[version_index] | rolled
        nonce = r.nonce & 0xFFFFFFFF
        key = (job_id, id(work), nonce, version)
        if key in self._seen:
            self.count("duplicates")
            return
        self._seen[key] = None
        if len(self._seen) > DUP_WINDOW:
            self._seen.popitem(last=False)
        if not work.nonce_start <= nonce < work.nonce_start + work.nonce_count:
            self.count("stale")
            return
        chip = ((nonce >> 24) & 0xFF) // (256 // max(self.chips, 1))
        self.report(ctx, work, nonce, version=None if version == work.version else version, chip=chip)

    def describe(self) -> dict[str, Any]:
        return {"chips": self.chips, "frequency_mhz": self.freq_mhz,
                "nominal_hashrate": self.nominal_hashrate(),
                "watts": self.facts.watts(self.freq_mhz, max(self.chips, 1)), "jobs_sent": self.jobs_sent}


def create(key: str, target: str, options: dict[str, Any], make_transport) -> BM13xxDevice:
    from miner.drivers.chips import chip
    facts = chip(key)
    transport = make_transport(target, int(options.get("baud", 115200)))
    return BM13xxDevice(f"{key}:{target}", transport, facts, options)
