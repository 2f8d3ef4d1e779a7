"""The pure core: command grammar, domain rules, clock, fault points and the values a handler asks
to send. Standard library only: no I/O.
"""
