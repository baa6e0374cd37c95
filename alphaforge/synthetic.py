"""Kept for the import path documented in earlier releases: the generator lives in
:mod:`alphaforge.data.synthetic`."""

from alphaforge.data.synthetic import synthetic_ohlcv

__all__ = ["synthetic_ohlcv"]
