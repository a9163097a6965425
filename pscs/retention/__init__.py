"""Retention (S1): holds, the retention sweeper and the disposal report.

Retention builds on storage: it registers the holds as a protection source with
:mod:`pscs.storage.protection` (:mod:`pscs.retention.protection`) and deletes through
:mod:`pscs.storage.deletion`, which writes the disposal ledger.
"""
