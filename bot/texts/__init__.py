"""Every user-visible string, per language: one module per family (``ZH``, ``EN``), built into
the one message catalogue by ``catalog.py``."""
