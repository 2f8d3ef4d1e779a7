"""The request engine (open, click, expire, cancel) and the request cards it renders."""
