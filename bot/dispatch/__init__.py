"""From an inbound message or card click to a handler: one transaction, exactly once; the context
handlers act through; the error boundary; limits.
"""
