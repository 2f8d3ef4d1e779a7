"""Every user-visible string, per language, and the one markdown escaper."""
