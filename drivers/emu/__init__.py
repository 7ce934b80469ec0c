"""Test doubles for the ASIC drivers, kept apart from the real drivers.

- ``emulator``: an emulated board (Icarus or a BM13xx chain) behind a pty or TCP port, hashing with
  the real SHA-256 core;
- ``models``: the emulated chips' behaviour;
- ``emulate``: ``miner emulate``;
- ``usbsim``: a simulated USB bus for the discovery and USB transport tests.
"""
