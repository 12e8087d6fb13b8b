"""Evidence verification: drop poisoned, injected, contradictory or off-topic chunks, with reasons."""

from ragpipe.verify.verifier import ALL_SIGNALS, DEFAULT_SIGNALS, Verification, Verifier, VerifierConfig

__all__ = ["ALL_SIGNALS", "DEFAULT_SIGNALS", "Verification", "Verifier", "VerifierConfig"]
