"""Stratum v1 pool client.

Three layers (docs/STRATUM.md): codec (pure parsing and building of lines), session (one connection:
handshake, ids, timeouts, job building) and manager (failover, share routing, accounting).
"""
from miner.stratum.config import PoolConfig, parse_url
from miner.stratum.manager import PoolManager
from miner.stratum.session import Timeouts

__all__ = ["PoolConfig", "PoolManager", "Timeouts", "parse_url"]
