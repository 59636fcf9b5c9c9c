"""Writes, one module per subject: datasets, items (and scenes), annotations, queue.

Every write validates with `full_clean()` or equivalent checks (which also run the named database
constraints' checks, so a bad row gets a readable message) before it touches the database, and every
multi-row write is one transaction: a bad input stores nothing.
"""
