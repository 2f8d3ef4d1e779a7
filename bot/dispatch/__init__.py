"""From an inbound message, card click or due job to a handler: the one Context and the
router (context.py); the dispatcher (dispatcher.py), composed of small steps: rate limits
(limits.py), sender turns (turns.py), authority (authority.py), read batching (batching.py)
and the one error boundary (boundary.py); its counters (metrics.py).
"""
