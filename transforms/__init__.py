"""Composite PTransforms and the pure functions behind them, one concern a module."""
