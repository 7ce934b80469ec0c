"""Built-in backends: cpu, opencl, cuda (asic lives in miner.drivers). Imported lazily by miner.engine.backend."""
