"""ASIC board drivers (stub)."""
