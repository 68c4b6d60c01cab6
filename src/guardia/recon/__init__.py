"""Reconciliation core: bank statement lines against Conekta and Odoo ledger entries.

Pure library code on polars frames, no I/O:

- ``model``: column schemas, rules, exception reasons and configuration;
- ``normalize``: CLABE, SPEI/OXXO references, amounts and dates, scalar and vectorised;
- ``match``: the pipeline (exact, window + score, payouts in two hops, exceptions, KPI);
- ``payouts``: hop 2, which charges a Conekta transfer paid out;
- ``synth`` and ``score``: seeded synthetic data with ground truth, and its scoring.

See docs/reconciliation.md for the domain facts and the algorithm.
"""
