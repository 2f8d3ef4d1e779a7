"""The ``baton`` command: run, sandbox, bulk files, schedule and audit for operators."""
