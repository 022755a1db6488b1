"""Proving the bundle on this device: field verification against the reference outputs
(``verify``, ``records``, ``reference_inputs``) and latency against the budgets (``bench``,
``bench_isa``).
"""
