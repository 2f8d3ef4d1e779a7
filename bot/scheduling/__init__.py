"""Due work (rows claimed atomically, done once) and the APScheduler alarm that wakes it."""
