"""Data exchange in the standards sponsors and regulators read (SPEC §13): CDISC ODM 1.3.2,
SDTM-style datasets (CSV, SAS XPORT v5, Dataset-JSON) and FHIR R4 bundles.

``source`` reads the study a batch of participants at a time; ``odm``, ``sdtm`` and ``fhir``
turn one participant's records into their standard's shape; the writers stream, so an export
holds one batch in memory whatever the size of the study. ``scope`` decides what a reader may
see (their site, and the arms only when they may know them); ``services`` puts every export on
the audit trail.
"""
