"""Evidence verification: drop poisoned, injected or contradictory chunks, with reasons."""

from ragpipe.verify.verifier import (
    ALL_SIGNALS,
    DEFAULT_SIGNALS,
    ROBUST,
    Verification,
    Verifier,
    VerifierConfig,
)

__all__ = ["ALL_SIGNALS", "DEFAULT_SIGNALS", "ROBUST", "Verification", "Verifier", "VerifierConfig"]
