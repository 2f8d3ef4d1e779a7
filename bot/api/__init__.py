"""Baton's own HTTP endpoints (aiohttp.web): health and metrics for operators."""
