from setuptools import setup

# setuptools does not accept cffi_modules in pyproject.toml; this is the one place it can go.
setup(cffi_modules=["csrc/build_core.py:ffibuilder"])
