"""The one error hierarchy of the miner.

Every error a user can cause or meet derives from MinerError and carries a
message that reads as one line; the CLI prints it and exits without a traceback.
Low-level causes are kept with ``raise ... from``.
"""


class MinerError(Exception):
    """Base of every error the miner raises on purpose."""


class ConfigError(MinerError, ValueError):
    """A user mistake in flags, the config file or a URL; the message says how to fix it."""


class CoreError(MinerError):
    """The C core is missing, unusable or was asked for an implementation it does not have."""


class BackendUnavailable(MinerError):
    """A backend cannot be loaded, usually because an optional dependency is missing."""


class DeviceError(MinerError):
    """A device failed: open, self-test, I/O."""


class DeviceGone(DeviceError):
    """A device disappeared (unplugged, port closed); the engine may retry opening it."""


class NoSuchDevice(DeviceGone):
    """The port or path a device was given does not exist. At start that is a mistake to report at
    once; on a board that was mining it is an unplug, retried like any DeviceGone."""


class ProtocolError(MinerError):
    """A peer (pool, device, API client) sent something malformed."""


class PoolError(MinerError):
    """A pool could not be reached or refused us (connect, TLS, authorize)."""
