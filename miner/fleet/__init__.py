"""The fleet seam: monitoring and control around a running miner.

- ``api``: the cgminer-compatible JSON API (port 4028).
- ``metrics``: Prometheus /metrics.
- ``power``: watts per device and J/TH.
- ``curtail``: pausing by schedule, energy price or profitability.
- ``profit``: revenue, energy cost and margin arithmetic (also ``miner profit``).
- ``wiring``: the flags of all of the above, and start()/close() around a MinerControl.

Every view reads the same MinerSnapshot (miner.engine.stats), so they never disagree.
"""
