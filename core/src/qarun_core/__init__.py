"""QARun."""
