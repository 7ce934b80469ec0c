"""BM13xx UART wire format: frames, CRCs, registers, job payloads and replies. Pure functions, no I/O.

TX frame (host -> chain):
  offset 0  55 AA          preamble
         2  header         0x40 command | 0x20 job, +0x10 broadcast; low bits 0 set-address,
                           1 write, 2 read, 3 chain-inactive (0x21 is a job)
         3  length         bytes from header to the end of the CRC
         4  payload
        -1  CRC5 (commands, over header..payload) or -2 CRC16 big-endian (jobs)
RX frame (chain -> host), reply_len bytes (9 on BM1397, 11 on BM1366+):
  offset 0  AA 55
         2  data[4]        nonce (header bytes 76..79) or register value (big-endian)
         6  midstate_or_chip   BM1397 nonce: midstate number; register reply: the chip's address
         7  job_or_register    nonce: job id (BM1366+: job id << 1 in bits 7..4, chip bits below);
                               register reply: the register read
         8  version[2]     BM1366+: rolled version bits >> 13, big-endian
        -1  bit 7: 1 = nonce, 0 = register reply; bits 4..0: CRC5 over bytes 2..-2
"""
from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from miner.engine.job import spread_bits
from miner.errors import ProtocolError
from miner.sha256 import midstate

PREAMBLE_TX = b"\x55\xaa"
PREAMBLE_RX = b"\xaa\x55"

CMD_SETADDRESS, CMD_WRITE, CMD_READ, CMD_INACTIVE = 0x40, 0x41, 0x42, 0x43
BROADCAST = 0x10
JOB = 0x21

REG_CHIP_ID = 0x00
REG_PLL = 0x08
REG_TICKET_MASK = 0x14
REG_MISC = 0x18
REG_VERSION_MASK = 0xA4

PLL_REF_MHZ = 25.0


def crc5(data: bytes) -> int:
    """CRC5, polynomial x^5+x^2+1, initial value 0x1F, MSB first."""
    crc = 0x1F
    for byte in data:
        for bit in range(7, -1, -1):
            inbit = (byte >> bit) & 1
            top = (crc >> 4) & 1
            crc = (crc << 1) & 0x1F
            if inbit ^ top:
                crc ^= 0x05
    return crc


def crc16_ccitt_false(data: bytes) -> int:
    """CRC16 CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final xor.

    binascii.crc_hqx is exactly this CRC (non-reflected 0x1021) with a chosen initial value, in C:
    jobs go out up to hundreds of times a second when a pool allows no version rolling.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def command(header: int, payload: bytes) -> bytes:
    body = bytes((header, len(payload) + 3)) + payload
    return PREAMBLE_TX + body + bytes((crc5(body),))


def write_reg(reg: int, value: bytes, chip: int | None = None) -> bytes:
    """Write 4 bytes to register ``reg`` of one chip (by address) or, with chip=None, all chips."""
    hdr = CMD_WRITE if chip is not None else CMD_WRITE | BROADCAST
    return command(hdr, bytes((chip or 0, reg)) + value)


def read_reg(reg: int, chip: int | None = None) -> bytes:
    hdr = CMD_READ if chip is not None else CMD_READ | BROADCAST
    return command(hdr, bytes((chip or 0, reg)))


def set_address(addr: int) -> bytes:
    return command(CMD_SETADDRESS, bytes((addr, 0)))


def chain_inactive() -> bytes:
    return command(CMD_INACTIVE | BROADCAST, b"\x00\x00")


def job_frame(payload: bytes) -> bytes:
    body = bytes((JOB, len(payload) + 4)) + payload
    return PREAMBLE_TX + body + crc16_ccitt_false(body).to_bytes(2, "big")


def parse_tx(frame: bytes) -> tuple[int, bytes]:
    """(header, payload) of one TX frame; ProtocolError on a bad preamble, length or CRC."""
    if len(frame) < 5 or frame[:2] != PREAMBLE_TX:
        raise ProtocolError("bad preamble")
    hdr, length = frame[2], frame[3]
    if len(frame) != length + 2:
        raise ProtocolError(f"length {length} does not match frame of {len(frame)} bytes")
    body = frame[2:-2] if hdr == JOB else frame[2:-1]
    if hdr == JOB:
        if crc16_ccitt_false(body) != int.from_bytes(frame[-2:], "big"):
            raise ProtocolError("bad CRC16")
    elif crc5(body) != frame[-1]:
        raise ProtocolError("bad CRC5")
    return hdr, body[2:]


# -- registers -------------------------------------------------------------
def _reverse_bits(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


def ticket_mask_value(diff: int) -> bytes:
    """Register 0x14 for a ticket difficulty: the largest power of two <= diff, minus one,
    big-endian with the bits of each byte reversed (the chip compares hash bits LSB-first)."""
    d = max(1, int(diff))
    mask = (1 << (d.bit_length() - 1)) - 1
    return bytes(_reverse_bits(b) for b in mask.to_bytes(4, "big"))


def ticket_diff_from_value(value: bytes) -> int:
    mask = int.from_bytes(bytes(_reverse_bits(b) for b in value), "big")
    return mask + 1


def version_mask_value(mask: int) -> bytes:
    """Register 0xA4: 90 00 then the rolled bits (mask >> 13) big-endian."""
    return b"\x90\x00" + ((mask >> 13) & 0xFFFF).to_bytes(2, "big")


def version_mask_from_value(value: bytes) -> int:
    return int.from_bytes(value[2:4], "big") << 13


@dataclass(frozen=True, slots=True)
class PLL:
    fbdiv: int
    refdiv: int
    postdiv1: int
    postdiv2: int

    @property
    def mhz(self) -> float:
        return PLL_REF_MHZ * self.fbdiv / (self.refdiv * self.postdiv1 * self.postdiv2)

    def value(self) -> bytes:
        # 0x50 instead of 0x40 selects the high VCO band when fbdiv*ref/refdiv >= 2400 MHz.
        vco_hi = PLL_REF_MHZ * self.fbdiv / self.refdiv >= 2400
        return bytes((0x50 if vco_hi else 0x40, self.fbdiv, self.refdiv,
                      ((self.postdiv1 - 1) << 4) | (self.postdiv2 - 1)))

    @classmethod
    def from_value(cls, value: bytes) -> "PLL":
        return cls(value[1], value[2], (value[3] >> 4) + 1, (value[3] & 0x7) + 1)


def pll_for(mhz: float) -> PLL:
    """The PLL setting closest to ``mhz``: fbdiv 144..235, postdiv1 >= postdiv2 (datasheet limits)."""
    best = None
    for refdiv in (2, 1):
        for p1 in range(7, 0, -1):
            for p2 in range(p1, 0, -1):
                fb = round(mhz * refdiv * p1 * p2 / PLL_REF_MHZ)
                if 144 <= fb <= 235:
                    cand = PLL(fb, refdiv, p1, p2)
                    if best is None or abs(cand.mhz - mhz) < abs(best.mhz - mhz):
                        best = cand
    if best is None:
        raise ValueError(f"no PLL setting for {mhz} MHz")
    return best


# -- jobs --------------------------------------------------------------------
def reverse_words(b: bytes) -> bytes:
    """The eight 4-byte words of a 32-byte value in reverse order (bytes inside each word kept)."""
    return b"".join(b[i:i + 4] for i in range(len(b) - 4, -1, -4))


def full_header_job(job_id: int, header: bytes, start_nonce: int = 0) -> bytes:
    """BM1366/68/70 job payload (82 bytes) for an 80-byte header:
    0 job_id | 1 0x01 | 2 start_nonce LE | 6 nbits LE | 10 ntime LE | 14 merkle root (words reversed)
    | 46 prevhash (words reversed) | 78 version LE."""
    return b"".join((bytes((job_id, 0x01)), start_nonce.to_bytes(4, "little"), header[72:76], header[68:72],
                     reverse_words(header[36:68]), reverse_words(header[4:36]), header[0:4]))


def header_from_full_job(payload: bytes) -> tuple[int, bytes]:
    """(job_id, 80-byte header with nonce 0) from a full-header job payload."""
    if len(payload) != 82:
        raise ProtocolError(f"job payload of {len(payload)} bytes, expected 82")
    header = b"".join((payload[78:82], reverse_words(payload[46:78]), reverse_words(payload[14:46]),
                       payload[10:14], payload[6:10], b"\0\0\0\0"))
    return payload[0], header


def midstate_job(job_id: int, header: bytes, midstates: list[bytes], start_nonce: int = 0) -> bytes:
    """BM1397 job payload: 0 job_id | 1 n_midstates | 2 start_nonce | 6 nbits | 10 ntime | 14 merkle[28:32]
    | 18 midstates, each 32 bytes (state words h7..h0, big-endian)."""
    return b"".join((bytes((job_id, len(midstates))), start_nonce.to_bytes(4, "little"), header[72:76],
                     header[68:72], header[64:68], *midstates))


def midstate_bytes(state: tuple[int, ...]) -> bytes:
    return struct.pack(">8I", *reversed(state))


def midstate_from_bytes(b: bytes) -> tuple[int, ...]:
    return tuple(reversed(struct.unpack(">8I", b)))


# -- replies ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Reply:
    is_nonce: bool
    data: bytes            # 4 bytes: header bytes 76..79, or the register value
    midstate_or_chip: int  # frame byte 6: midstate number (BM1397 nonce) / chip address (register reply)
    job_or_register: int   # frame byte 7: job id field (nonce; decoded by the JobFormat) / register address
    version: int           # rolled bits >> 13 (0 when the chip has no version field)

    @property
    def nonce(self) -> int:
        return int.from_bytes(self.data, "little")

    @property
    def value(self) -> int:
        return int.from_bytes(self.data, "big")


def build_reply(is_nonce: bool, data: bytes, midstate_or_chip: int, job_or_register: int, version: int | None,
                reply_len: int) -> bytes:
    body = data + bytes((midstate_or_chip, job_or_register)) + (version.to_bytes(2, "big") if reply_len == 11 else b"")
    return PREAMBLE_RX + body + bytes(((0x80 if is_nonce else 0) | crc5(body),))


def parse_reply(frame: bytes) -> Reply:
    """One RX frame (already aligned on AA 55 and reply_len long); ProtocolError on a bad CRC."""
    body, last = frame[2:-1], frame[-1]
    if crc5(body) != last & 0x1F:
        raise ProtocolError("bad CRC5 in reply")
    version = int.from_bytes(body[6:8], "big") if len(body) >= 8 else 0
    return Reply(bool(last & 0x80), bytes(body[0:4]), body[4], body[5], version)


class ReplyReader:
    """Splits a byte stream into reply frames, resynchronising on the AA 55 preamble.

    Counts the bytes it had to skip (garbage) and frames with a bad CRC; both
    are dropped, never parsed into nonces.
    """

    def __init__(self, reply_len: int) -> None:
        self.reply_len = reply_len
        self.buf = bytearray()
        self.garbage = 0
        self.bad_crc = 0

    def feed(self, data: bytes) -> list[Reply]:
        self.buf += data
        out = []
        while True:
            i = self.buf.find(PREAMBLE_RX)
            if i < 0:
                keep = 1 if self.buf[-1:] == b"\xaa" else 0
                self.garbage += len(self.buf) - keep
                del self.buf[:len(self.buf) - keep]
                return out
            if i:
                self.garbage += i
                del self.buf[:i]
            if len(self.buf) < self.reply_len:
                return out
            frame = bytes(self.buf[:self.reply_len])
            try:
                reply = parse_reply(frame)
            except ProtocolError:
                # Skip only the preamble: a real frame may start inside this one.
                self.bad_crc += 1
                del self.buf[:2]
                continue
            del self.buf[:self.reply_len]
            out.append(reply)


# -- job formats: one object per chip family -----------------------------------------
# The driver (drivers/bm13xx.py) and the emulator (drivers/emu/models.py) hold one of
# these and never branch on the family themselves.
@dataclass(frozen=True, slots=True)
class MidstateJobs:
    """BM1397: the host rolls versions, sending one midstate per version (up to ``midstates``);
    a nonce reply names its midstate in byte 6 and its job in byte 7 (ids step by 4)."""
    midstates: int
    id_step = 4
    sets_version_mask = False  # no version-mask register: the versions are in the midstates

    def wants_rolling(self) -> bool:
        """Whether the device asks the engine for Work with a version mask to roll."""
        return self.midstates > 1

    def versions(self, version: int, mask: int) -> tuple[int, ...]:
        """Header versions one job covers: the work's, and with a mask the next midstates - 1."""
        n = min(self.midstates, 1 << bin(mask).count("1")) if mask else 1
        return tuple((version & ~mask) | spread_bits(i, mask) for i in range(n))

    def versions_per_job(self, mask: int) -> int:
        return self.midstates if mask else 1

    def payload_len(self) -> int:
        return 18 + 32 * self.midstates

    def payload(self, job_id: int, header: bytes, versions: tuple[int, ...]) -> bytes:
        mids = [midstate_bytes(midstate(v.to_bytes(4, "little") + header[4:64])) for v in versions]
        return midstate_job(job_id, header, mids, 0)

    def reply_job(self, r: Reply) -> tuple[int, int, int]:
        """(job id, index into the job's versions, rolled version bits) of a nonce reply."""
        return r.job_or_register & 0xFC, r.midstate_or_chip, 0

    # -- the chip's side (emulator) ----------------------------------------------
    def parse_payload(self, payload: bytes) -> tuple[int, bytes | None, list[tuple[int, ...]], bytes]:
        """(job id, None, midstates, header bytes 64..75) of a job payload."""
        n = payload[1]
        mids = [midstate_from_bytes(payload[18 + 32 * m:50 + 32 * m]) for m in range(n)]
        return payload[0], None, mids, payload[14:18] + payload[10:14] + payload[6:10]

    def reply_fields(self, job_id: int, k: int, mask: int, chip: int) -> tuple[int, int, int]:
        """(byte 6, byte 7, version field) of the reply to a nonce found with version index k."""
        return k, job_id & 0xFC, 0


@dataclass(frozen=True, slots=True)
class HeaderJobs:
    """BM1366/68/70: the chip gets the whole header and rolls the version bits of the
    version-mask register itself; a nonce reply carries the rolled bits and its job id << 1
    (ids step by 8) with the chip's low address bits."""
    rolls_versions: bool
    id_step = 8
    sets_version_mask = True

    def wants_rolling(self) -> bool:
        return self.rolls_versions

    def versions(self, version: int, mask: int) -> tuple[int, ...]:
        return (version,)

    def versions_per_job(self, mask: int) -> int:
        return 1 << bin(mask).count("1") if self.rolls_versions else 1

    def payload_len(self) -> int:
        return 82

    def payload(self, job_id: int, header: bytes, versions: tuple[int, ...]) -> bytes:
        return full_header_job(job_id, header, 0)

    def reply_job(self, r: Reply) -> tuple[int, int, int]:
        return (r.job_or_register & 0xF0) >> 1, 0, r.version << 13

    def parse_payload(self, payload: bytes) -> tuple[int, bytes | None, None, None]:
        job_id, header = header_from_full_job(payload)
        return job_id, header, None, None

    def reply_fields(self, job_id: int, k: int, mask: int, chip: int) -> tuple[int, int, int]:
        return 0, ((job_id << 1) & 0xF0) | (chip & 0x0F), (spread_bits(k, mask) or 0) >> 13


JobFormat = MidstateJobs | HeaderJobs


def job_format(facts) -> JobFormat:
    """The job format of a chip record (miner.drivers.chips.ChipFacts)."""
    return MidstateJobs(facts.midstates) if facts.midstates else HeaderJobs(facts.rolls_versions)
