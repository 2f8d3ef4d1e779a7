"""Bulk import and export of the permission table: the file layer (:mod:`bot.files.sheet`)."""
