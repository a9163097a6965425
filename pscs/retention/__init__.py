"""Retention (S1): holds, the retention sweeper, disposal records and reports.

Kept import-light on purpose: :mod:`pscs.storage.protection` and
:mod:`pscs.storage.deletion` import :mod:`pscs.retention.sources` and
:mod:`pscs.retention.disposal`, so nothing here may import the storage package at
module level.
"""
