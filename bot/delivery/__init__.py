"""What leaves Baton after a commit: the outbox sender and security alerts."""
