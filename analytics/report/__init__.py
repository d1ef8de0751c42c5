"""The weekly report: figures from the store, rendered as an e-mail, delivered exactly once."""
