"""A bitcoind JSON-RPC stand-in serving a regtest-like block template to the test pool.

It answers exactly the calls stratum-pool-sha256 makes (getpeerinfo, validateaddress, getdifficulty,
getmininginfo, submitblock, getblockchaininfo, getnetworkinfo, getblocktemplate, getblock), single or
batched, on 127.0.0.1. The template carries two real-looking transactions so jobs have a two-step
merkle branch. nbits is mainnet-hard on purpose: every test share stays far from the network target,
so the pool never takes its block path (the pool's own share check is what the tests want).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Script of the regtest P2PKH address launch.js configures (mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn).
POOL_SCRIPT = "76a914" + "2161fea7da6f4c6ac6f5b3f9a5f2fd2c7d1e1b2a" + "88ac"
NBITS = "17034219"          # a mainnet difficulty; see the module docstring
MAX_BODY = 1 << 20


def _dsha(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def _target_hex(nbits: str) -> str:
    n = int(nbits, 16)
    return f"{(n & 0xFFFFFF) << (8 * ((n >> 24) - 3)):064x}"


class BitcoindStub:
    """Start with start(); .port is the RPC port. new_block() moves the tip (the pool then sends a clean job)."""

    def __init__(self) -> None:
        self.height = 1000
        self.prevhash = _dsha(b"stub tip 0")[::-1].hex()
        self.submitted_blocks: list[str] = []
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._txs = []
        for i in range(2):
            data = bytes.fromhex("01000000") + bytes([1]) + _dsha(b"in%d" % i) + bytes(4) + b"\x00" + \
                b"\xff\xff\xff\xff" + b"\x01" + (1000 + i).to_bytes(8, "little") + b"\x00" + bytes(4)
            txid = _dsha(data)[::-1].hex()
            self._txs.append({"data": data.hex(), "txid": txid, "hash": txid, "fee": 0, "depends": []})

    # -- chain control -------------------------------------------------
    def new_block(self) -> None:
        with self._lock:
            self.height += 1
            self.prevhash = _dsha(b"stub tip %d" % self.height)[::-1].hex()

    def template(self) -> dict:
        with self._lock:
            now = int(time.time())
            return {
                "version": 0x20000000, "rules": [], "vbavailable": {}, "vbrequired": 0,
                "previousblockhash": self.prevhash, "transactions": list(self._txs),
                "coinbaseaux": {"flags": ""}, "coinbasevalue": 5000000000,
                "longpollid": self.prevhash + str(self.height), "target": _target_hex(NBITS),
                "mintime": now - 600, "mutable": ["time", "transactions", "prevblock"],
                "noncerange": "00000000ffffffff", "sigoplimit": 80000, "sizelimit": 4000000,
                "weightlimit": 4000000, "curtime": now, "bits": NBITS, "height": self.height,
            }

    # -- RPC ----------------------------------------------------------
    def call(self, method: str, params: list) -> tuple[object, object]:
        """(result, error) for one JSON-RPC call."""
        self.calls.append(method)
        if method == "getpeerinfo":
            return [{"id": 0, "addr": "127.0.0.1:18444", "startingheight": self.height}], None
        if method == "validateaddress":
            addr = params[0] if params else ""
            return {"isvalid": True, "address": addr, "scriptPubKey": POOL_SCRIPT, "ismine": False}, None
        if method == "getdifficulty":
            return 1.0, None
        if method == "getmininginfo":
            return {"blocks": self.height - 1, "difficulty": 1.0, "networkhashps": 1.0e6, "chain": "regtest"}, None
        if method == "getblockchaininfo":
            return {"chain": "regtest", "blocks": self.height - 1, "headers": self.height - 1,
                    "difficulty": 1.0, "initialblockdownload": False}, None
        if method == "getnetworkinfo":
            return {"version": 270000, "protocolversion": 70016, "connections": 1}, None
        if method == "getinfo":
            return None, {"code": -32601, "message": "Method not found"}
        if method == "submitblock":
            if not params:
                # bitcoind answers a parameterless submitblock with a usage error (code -1); the pool
                # probes for exactly that to learn the method exists.
                return None, {"code": -1, "message": "submitblock \"hexdata\" ( \"dummy\" )"}
            self.submitted_blocks.append(str(params[0]))
            return None, None
        if method == "getblocktemplate":
            return self.template(), None
        if method == "getblock":
            return None, {"code": -5, "message": "Block not found"}
        return None, {"code": -32601, "message": "Method not found"}

    def start(self) -> "BitcoindStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n <= 0 or n > MAX_BODY:
                    self.send_error(400)
                    return
                try:
                    req = json.loads(self.rfile.read(n))
                except ValueError:
                    self.send_error(400)
                    return
                reqs = req if isinstance(req, list) else [req]
                out = []
                for r in reqs:
                    if not isinstance(r, dict):
                        out.append({"id": None, "result": None, "error": {"code": -32600, "message": "bad"}})
                        continue
                    res, err = stub.call(str(r.get("method")), r.get("params") or [])
                    out.append({"id": r.get("id"), "result": res, "error": err})
                body = json.dumps(out if isinstance(req, list) else out[0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="bitcoind-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
