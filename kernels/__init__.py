"""GPU kernel sources (sha256d.cl, sha256d.cu) and the SHA-256 header they share with the C core.

Installed as package data under miner.kernels; read them with importlib.resources.
"""
